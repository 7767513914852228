//! Realistic DAS activity for tests, demos and benchmarks: events shaped like each engine's (field
//! names, JSON types and record versions as in `das-format.md` §1.6), in a pgbench-like mix of reads,
//! writes, logins and DDL, plus heartbeats.
//!
//! Deterministic for a given seed, so tests and benchmarks are repeatable. This module only builds
//! JSON values; encrypting them into records is [`crate::pipeline::record::encode`]'s job.

use serde_json::{json, Value};

use crate::pipeline::esdk::EncryptOptions;
use crate::pipeline::utc::UtcDateTime;

/// A DAS source engine; it decides field shapes, record version and ESDK suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Aurora PostgreSQL: record version 1.1, suite 0x0178, 4 KiB frames.
    AuroraPostgresql,
    /// Aurora MySQL: record version 1.2, suite 0x0378, 256 KiB frames.
    AuroraMysql,
    /// RDS for Oracle: record version 1.3 (instance stream).
    Oracle,
    /// RDS for SQL Server: record version 1.4 (instance stream).
    SqlServer,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 4] = [Self::AuroraPostgresql, Self::AuroraMysql, Self::Oracle, Self::SqlServer];

    /// The envelope `version` this engine writes.
    pub fn record_version(self) -> &'static str {
        match self {
            Self::AuroraPostgresql => "1.1",
            Self::AuroraMysql => "1.2",
            Self::Oracle => "1.3",
            Self::SqlServer => "1.4",
        }
    }

    /// The ESDK suite and framing this engine is known (PostgreSQL, MySQL) or assumed to use.
    /// No public source gives the suite for Oracle and SQL Server; 0x0178 is assumed.
    pub fn encrypt_options(self) -> EncryptOptions {
        match self {
            Self::AuroraMysql => EncryptOptions::aurora_mysql(),
            _ => EncryptOptions::aurora_postgresql(),
        }
    }

    /// Whether the stream is per cluster (Aurora) rather than per instance.
    pub fn is_cluster_stream(self) -> bool {
        matches!(self, Self::AuroraPostgresql | Self::AuroraMysql)
    }
}

/// What kind of activity an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A read (SELECT).
    Read,
    /// A write (INSERT / UPDATE / DELETE).
    Write,
    /// A login.
    Login,
    /// A logout.
    Logout,
    /// Schema change (CREATE / ALTER / DROP).
    Ddl,
}

/// Relative weights of the kinds of activity; logins are split evenly into logins and logouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Reads (SELECT).
    pub read: u64,
    /// Writes (UPDATE).
    pub write: u64,
    /// Schema changes.
    pub ddl: u64,
    /// Logins and logouts.
    pub login: u64,
}

impl Mix {
    /// A TPC-B-like (pgbench) mix: 62 % reads, 33 % writes, 4 % logins and logouts, 1 % DDL.
    pub fn pgbench() -> Self {
        Self {
            read: 62,
            write: 33,
            ddl: 1,
            login: 4,
        }
    }

    /// Parses `pgbench`, or `read=60,write=30,ddl=1,login=5` (missing kinds weigh 0).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("pgbench") {
            return Ok(Self::pgbench());
        }
        let mut mix = Self {
            read: 0,
            write: 0,
            ddl: 0,
            login: 0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not kind=weight"))?;
            let weight: u64 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{weight:?} is not a whole number"))?;
            match name.trim().to_ascii_lowercase().as_str() {
                "read" => mix.read = weight,
                "write" => mix.write = weight,
                "ddl" => mix.ddl = weight,
                "login" => mix.login = weight,
                other => return Err(format!("{other:?} is not one of read, write, ddl, login")),
            }
        }
        if mix.total() == 0 {
            return Err("the weights add up to 0".to_owned());
        }
        Ok(mix)
    }

    fn total(&self) -> u64 {
        self.read + self.write + self.ddl + self.login
    }

    fn pick(&self, roll: u64) -> Activity {
        let mut roll = roll;
        for (weight, activity) in [
            (self.read, Activity::Read),
            (self.write, Activity::Write),
            (self.ddl, Activity::Ddl),
        ] {
            if roll < weight {
                return activity;
            }
            roll -= weight;
        }
        if roll < self.login / 2 {
            Activity::Login
        } else {
            Activity::Logout
        }
    }
}

/// Generates events for one database, one statement after another.
#[derive(Debug, Clone)]
pub struct Simulator {
    engine: Engine,
    cluster_id: String,
    instance_id: String,
    rng: u64,
    mix: Mix,
    statement_id: u64,
    /// Microseconds since the Unix epoch of the next event.
    clock_micros: u64,
}

/// What every engine's event is made of, drawn in one order so that a seed gives the same events.
struct Drawn {
    class: &'static str,
    command: &'static str,
    object: &'static str,
    sql: String,
    user: &'static str,
    app: &'static str,
    host: String,
    port: u64,
    pid: u64,
    log_time: String,
    connect: bool,
}

const USERS: [&str; 4] = ["app", "app", "reporting", "admin"];
const APPS: [&str; 3] = ["pgbench", "api-server", "psql"];

impl Simulator {
    /// A simulator for `engine`; `instance_id` is `db-…`, `cluster_id` `cluster-…` (ignored for instance streams).
    pub fn new(engine: Engine, cluster_id: &str, instance_id: &str, seed: u64) -> Self {
        Self {
            engine,
            cluster_id: if engine.is_cluster_stream() {
                cluster_id.to_owned()
            } else {
                String::new()
            },
            instance_id: instance_id.to_owned(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            statement_id: 0,
            mix: Mix::pgbench(),
            clock_micros: 1_795_000_000_000_000,
        }
    }

    /// Sets the workload mix.
    pub fn set_mix(&mut self, mix: Mix) {
        self.mix = mix;
    }

    /// Sets the time of the next event (microseconds since the Unix epoch).
    pub fn set_clock(&mut self, micros: u64) {
        self.clock_micros = micros;
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick(&mut self, from: &[&'static str]) -> &'static str {
        let i = self.below(from.len() as u64) as usize;
        from.get(i).copied().unwrap_or_default()
    }

    /// `count` events in the simulator's mix (pgbench-like unless set). Aurora MySQL adds its AUX event after each statement's MAIN event.
    pub fn events(&mut self, count: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let roll = self.below(self.mix.total());
            let activity = self.mix.pick(roll);
            out.push(self.event(activity));
            if self.engine == Engine::AuroraMysql
                && matches!(activity, Activity::Read | Activity::Write | Activity::Ddl)
                && out.len() < count
            {
                out.push(self.mysql_aux(activity));
            }
        }
        out
    }

    /// A heartbeat event.
    pub fn heartbeat(&mut self) -> Value {
        self.clock_micros += 1_000;
        json!({"type": "heartbeat", "logTime": self.log_time()})
    }

    /// The decrypted payload JSON holding `events`.
    pub fn payload(&self, events: &[Value]) -> Vec<u8> {
        crate::pipeline::activity::payload_json(&self.cluster_id, &self.instance_id, events)
    }

    fn log_time(&self) -> String {
        let t = UtcDateTime::from_unix_micros(i64::try_from(self.clock_micros).unwrap_or(i64::MAX));
        let (date, time, micros) = (t.date(), t.time(), t.micros);
        match self.engine {
            Engine::Oracle => format!("{date} {time}.{micros:06}"),
            Engine::SqlServer => format!("{date} {time}.{micros:06}0+00"),
            _ => format!("{date} {time}.{micros:06}+00"),
        }
    }

    /// One event of the given kind, shaped like this engine's.
    pub fn event(&mut self, activity: Activity) -> Value {
        self.statement_id += 1;
        self.clock_micros += 200 + self.below(5_000);
        let aid = 1 + self.below(100_000);
        let user = self.pick(&USERS);
        let app = self.pick(&APPS);
        let (class, command, object, sql) = self.statement(activity, aid);
        let e = Drawn {
            class,
            command,
            object,
            sql,
            user,
            app,
            host: format!("10.0.{}.{}", self.below(4), 10 + self.below(200)),
            port: 30_000 + self.below(30_000),
            pid: 1_000 + self.below(30_000),
            log_time: self.log_time(),
            connect: matches!(activity, Activity::Login | Activity::Logout),
        };
        match self.engine {
            Engine::AuroraPostgresql => self.postgresql_event(&e),
            Engine::AuroraMysql => self.mysql_event(&e),
            Engine::Oracle => self.oracle_event(&e),
            Engine::SqlServer => self.sqlserver_event(&e),
        }
    }

    /// Class, command, object and SQL text of a pgbench-like statement of the given kind.
    fn statement(&mut self, activity: Activity, aid: u64) -> (&'static str, &'static str, &'static str, String) {
        match activity {
            Activity::Read => (
                "READ",
                "SELECT",
                "pgbench_accounts",
                format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
            ),
            Activity::Write => (
                "WRITE",
                "UPDATE",
                "pgbench_accounts",
                format!(
                    "UPDATE pgbench_accounts SET abalance = abalance + {} WHERE aid = {aid};",
                    self.below(10_000) as i64 - 5_000
                ),
            ),
            Activity::Login => ("MISC", "CONNECT", "", String::new()),
            Activity::Logout => ("MISC", "DISCONNECT", "", String::new()),
            Activity::Ddl => (
                "DDL",
                "CREATE TABLE",
                "pgbench_history_archive",
                "CREATE TABLE pgbench_history_archive (LIKE pgbench_history);".to_owned(),
            ),
        }
    }

    /// Aurora PostgreSQL's shape: nulls where a connect event has no object.
    fn postgresql_event(&self, e: &Drawn) -> Value {
        json!({
            "type": "record", "logTime": e.log_time, "statementId": self.statement_id, "substatementId": 1,
            "objectType": if e.connect { Value::Null } else { json!("TABLE") }, "command": e.command,
            "objectName": if e.connect { Value::Null } else { json!(e.object) }, "databaseName": "bench", "dbUserName": e.user,
            "remoteHost": e.host, "remotePort": e.port.to_string(), "sessionId": format!("{:x}.{:x}", 0x6561_a0b1 + e.pid, e.pid),
            "rowCount": if e.connect { Value::Null } else { json!(1) },
            "commandText": if e.connect { Value::Null } else { json!(e.sql) }, "paramList": [], "pid": e.pid,
            "clientApplication": e.app, "exitCode": Value::Null, "class": e.class, "serverVersion": "16.4",
            "serverType": "PostgreSQL", "serviceName": "Amazon Aurora PostgreSQL-Compatible edition",
            "serverHost": "10.0.1.10", "netProtocol": "TCP", "dbProtocol": "Postgres 3.0",
            "errorMessage": Value::Null, "startTime": Value::Null,
        })
    }

    /// Aurora MySQL's shape: a MAIN event (its AUX follows from `mysql_aux`).
    fn mysql_event(&self, e: &Drawn) -> Value {
        json!({
            "type": "record", "clientApplication": Value::Null, "pid": e.pid, "dbUserName": e.user,
            "databaseName": "bench", "remoteHost": e.host, "remotePort": e.port.to_string(),
            "command": if e.connect { e.command } else { "QUERY" }, "commandText": e.sql, "paramList": Value::Null,
            "objectType": "TABLE", "objectName": e.object, "statementId": self.statement_id, "substatementId": 1,
            "exitCode": "0", "sessionId": e.pid.to_string(), "rowCount": 1, "serverHost": "master",
            "serverType": "MySQL", "serviceName": "Amazon Aurora MySQL", "serverVersion": "MySQL 8.0.32",
            "startTime": e.log_time, "endTime": e.log_time, "transactionId": "0", "dbProtocol": "MySQL",
            "netProtocol": "TCP", "errorMessage": "", "class": "MAIN", "logTime": e.log_time,
        })
    }

    /// RDS for Oracle's shape: upper-case names, engine-native audit fields.
    fn oracle_event(&self, e: &Drawn) -> Value {
        json!({
            "type": "record", "class": "Standard", "clientApplication": e.app, "command": if e.connect { "LOGON" } else { e.command },
            "commandText": if e.connect { Value::Null } else { json!(e.sql) }, "dbid": "1559425351", "databaseName": "ORCL",
            "dbProtocol": "oracle", "dbUserName": e.user.to_uppercase(), "endTime": Value::Null, "errorMessage": Value::Null,
            "exitCode": 0, "logTime": e.log_time, "netProtocol": "tcp", "objectName": if e.connect { Value::Null } else { json!(e.object.to_uppercase()) },
            "objectType": if e.connect { Value::Null } else { json!("APP") }, "paramList": [], "pid": e.pid, "remoteHost": e.host,
            "remotePort": e.port.to_string(), "rowCount": Value::Null, "serverHost": "10.0.1.20", "serverType": "oracle",
            "serverVersion": "19.0.0.0.ru-2024-10.rur-2024-10.r1", "serviceName": "oracle-ee", "sessionId": e.pid * 7,
            "startTime": Value::Null, "statementId": self.statement_id, "substatementId": Value::Null,
            "transactionId": Value::Null, "engineNativeAuditFields": {},
        })
    }

    /// RDS for SQL Server's shape: hex statement ids and session ids of its own.
    fn sqlserver_event(&mut self, e: &Drawn) -> Value {
        json!({
            "type": "record", "class": if e.connect { "LOGIN" } else { "TABLE" }, "clientApplication": e.app,
            "command": if e.connect { "LOGIN SUCCEEDED" } else { e.command }, "commandText": e.sql, "databaseName": "bench",
            "dbProtocol": "SQLSERVER", "dbUserName": e.user, "endTime": Value::Null, "errorMessage": Value::Null,
            "exitCode": 1, "logTime": e.log_time, "netProtocol": Value::Null, "objectName": e.object, "objectType": "TABLE",
            "paramList": Value::Null, "pid": Value::Null, "remoteHost": e.host, "remotePort": Value::Null, "rowCount": 1,
            "serverHost": "10.0.1.30", "serverType": "SQLSERVER", "serverVersion": "15.00.4073.23.v1.R1",
            "serviceName": "sqlserver-ee", "sessionId": 60 + self.below(100), "startTime": Value::Null,
            "statementId": format!("0x{:016X}", self.next()), "substatementId": 1,
            "transactionId": (4_532_935 + self.statement_id).to_string(), "engineNativeAuditFields": {},
        })
    }

    /// The AUX event Aurora MySQL adds after a statement's MAIN event.
    fn mysql_aux(&mut self, activity: Activity) -> Value {
        self.clock_micros += 10;
        let log_time = self.log_time();
        let command = match activity {
            Activity::Read => "READ",
            Activity::Write => "WRITE",
            _ => "CREATE",
        };
        json!({
            "type": "record", "clientApplication": Value::Null, "pid": 8123, "dbUserName": "app", "databaseName": "bench",
            "remoteHost": "10.0.0.5", "remotePort": "51234", "command": command, "commandText": "", "paramList": Value::Null,
            "objectType": "TABLE", "objectName": "pgbench_accounts", "statementId": self.statement_id, "substatementId": 2,
            "exitCode": "", "sessionId": "8123", "rowCount": 1, "serverHost": "master", "serverType": "MySQL",
            "serviceName": "Amazon Aurora MySQL", "serverVersion": "MySQL 8.0.32", "startTime": log_time,
            "endTime": log_time, "transactionId": "0", "dbProtocol": "MySQL", "netProtocol": "TCP",
            "errorMessage": "", "class": "AUX", "logTime": log_time,
        })
    }
}

/// A Lambda Kinesis event holding `records` (each a DAS record's data) as Lambda delivers them from
/// shard `shard_id` of the stream `stream_arn`: base64 data, increasing 56-digit sequence numbers
/// starting after `first_sequence`, and arrival times one millisecond apart from `arrival_seconds`.
pub fn lambda_kinesis_event(
    stream_arn: &str,
    shard_id: &str,
    records: &[Vec<u8>],
    first_sequence: u64,
    arrival_seconds: f64,
) -> Value {
    use base64::Engine as _;
    let region = stream_arn.split(':').nth(3).unwrap_or("us-east-1");
    let list: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let sequence = sequence_number(first_sequence + i as u64);
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": format!("{:x}", 0x5eed_u64.wrapping_mul(i as u64 + 1)),
                    "sequenceNumber": sequence,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": arrival_seconds + i as f64 / 1000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{sequence}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/das-archiver",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    json!({ "Records": list })
}

/// A Kinesis-style 56-digit sequence number whose order follows `n`.
pub fn sequence_number(n: u64) -> String {
    format!("4959033827149025660855969253{n:028}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_events_and_a_realistic_mix() {
        let mut a = Simulator::new(Engine::AuroraPostgresql, "cluster-A", "db-B", 7);
        let mut b = Simulator::new(Engine::AuroraPostgresql, "cluster-A", "db-B", 7);
        let events = a.events(1000);
        assert_eq!(events, b.events(1000));
        let reads = events.iter().filter(|e| e["class"] == "READ").count();
        let writes = events.iter().filter(|e| e["class"] == "WRITE").count();
        assert!(
            (500..700).contains(&reads) && (250..420).contains(&writes),
            "{reads} reads, {writes} writes"
        );
    }

    #[test]
    fn each_engine_uses_its_documented_field_types() {
        let event = |engine| Simulator::new(engine, "cluster-A", "db-B", 1).event(Activity::Read);
        assert!(event(Engine::AuroraPostgresql)["remotePort"].is_string());
        assert!(event(Engine::AuroraPostgresql)["sessionId"].is_string());
        assert!(event(Engine::AuroraMysql)["exitCode"].is_string());
        assert!(event(Engine::Oracle)["exitCode"].is_number());
        assert!(event(Engine::SqlServer)["statementId"].is_string());
        let oracle = Simulator::new(Engine::Oracle, "cluster-A", "db-B", 1);
        assert!(String::from_utf8(oracle.payload(&[]))
            .unwrap()
            .contains(r#""clusterId":"""#));
    }

    #[test]
    fn mixes_parse_and_weigh_the_kinds() {
        assert_eq!(Mix::parse("pgbench"), Ok(Mix::pgbench()));
        let ddl_only = Mix::parse("ddl=1").unwrap();
        let mut sim = Simulator::new(Engine::AuroraPostgresql, "cluster-A", "db-B", 5);
        sim.set_mix(ddl_only);
        assert!(sim.events(20).iter().all(|e| e["class"] == "DDL"));
        for bad in ["read", "read=x", "select=1", "read=0"] {
            assert!(Mix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mysql_statements_come_as_main_then_aux() {
        let events = Simulator::new(Engine::AuroraMysql, "cluster-A", "db-B", 3).events(50);
        let first_main = events
            .iter()
            .position(|e| e["class"] == "MAIN" && e["command"] == "QUERY")
            .unwrap();
        assert_eq!(events[first_main + 1]["class"], "AUX");
        assert_eq!(events[first_main + 1]["statementId"], events[first_main]["statementId"]);
    }
}
