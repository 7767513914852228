#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use serde_json::{json, Map, Value};

use super::*;
use crate::pipeline::activity::{ActivityRecord, ParseLimits};
use crate::pipeline::simulate::{Activity, Engine, Simulator};

const RESOURCE: &str = "cluster-4HNY5V4RRNPKKYB7ICFKE5JBQQ";

/// An event shaped like `engine`'s (the simulator's read), with some fields replaced.
fn event(engine: Engine, overrides: Value) -> Map<String, Value> {
    let mut sim = Simulator::new(engine, RESOURCE, "db-FZJTMYKCXQBUUZ6VLU7NW3ITCM", 7);
    let Value::Object(mut e) = sim.event(Activity::Read) else {
        unreachable!()
    };
    for (k, v) in overrides.as_object().unwrap() {
        e.insert(k.clone(), v.clone());
    }
    e
}

fn pack() -> RuleSet {
    RuleSet::default_pack().unwrap()
}

fn fired(rules: &RuleSet, e: &Map<String, Value>) -> Vec<String> {
    rules
        .evaluate(e)
        .into_iter()
        .map(|i| rules.rules()[i].id.clone())
        .collect()
}

fn assert_fires(engine: Engine, overrides: Value, rule: &str) {
    let e = event(engine, overrides.clone());
    assert_eq!(fired(&pack(), &e), vec![rule.to_owned()], "{engine:?} {overrides}");
}

fn assert_silent(engine: Engine, overrides: Value) {
    let e = event(engine, overrides.clone());
    assert!(
        fired(&pack(), &e).is_empty(),
        "{engine:?} {overrides}: {:?}",
        fired(&pack(), &e)
    );
}

#[test]
fn the_default_pack_holds_the_six_rules_of_the_issue() {
    let ids: Vec<_> = pack().rules().iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids,
        [
            "privilege-change",
            "destructive-ddl",
            "auth-failure-burst",
            "audit-tampering",
            "bulk-export",
            "catalog-enumeration"
        ]
    );
}

#[test]
fn privilege_changes_are_matched_in_every_engine_and_rdsadmin_is_excepted() {
    use Engine::*;
    assert_fires(
        AuroraPostgresql,
        json!({"class": "ROLE", "command": "GRANT", "commandText": "GRANT ALL ON customers TO mallory"}),
        "privilege-change",
    );
    assert_fires(
        AuroraPostgresql,
        json!({"class": "ROLE", "command": "ALTER ROLE", "commandText": "ALTER ROLE mallory WITH password"}),
        "privilege-change",
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "grant all on *.* to 'mallory'@'%'"}),
        "privilege-change",
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "/* x */ CREATE USER 'm'@'%' IDENTIFIED BY 'p'"}),
        "privilege-change",
    );
    assert_fires(
        Oracle,
        json!({"command": "ALTER USER", "commandText": "ALTER USER SCOTT IDENTIFIED BY *"}),
        "privilege-change",
    );
    assert_fires(
        SqlServer,
        json!({"class": "SQL LOGIN", "command": "CREATE", "commandText": "CREATE LOGIN m WITH PASSWORD = '******'"}),
        "privilege-change",
    );
    assert_fires(
        SqlServer,
        json!({"class": "SERVER ROLE", "command": "ADD MEMBER", "commandText": "ALTER SERVER ROLE sysadmin ADD MEMBER m"}),
        "privilege-change",
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "ROLE", "command": "GRANT", "dbUserName": "rdsadmin"}),
    );
    assert_silent(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "SELECT grant_date FROM grants"}),
    );
}

#[test]
fn destructive_ddl_is_matched_in_every_engine() {
    use Engine::*;
    assert_fires(
        AuroraPostgresql,
        json!({"class": "DDL", "command": "DROP TABLE", "commandText": "DROP TABLE customers"}),
        "destructive-ddl",
    );
    assert_fires(
        AuroraPostgresql,
        json!({"class": "WRITE", "command": "TRUNCATE TABLE", "commandText": "TRUNCATE customers"}),
        "destructive-ddl",
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "  drop database shop"}),
        "destructive-ddl",
    );
    assert_fires(
        Oracle,
        json!({"command": "DROP TABLE", "commandText": "DROP TABLE CUSTOMERS PURGE"}),
        "destructive-ddl",
    );
    assert_fires(
        SqlServer,
        json!({"class": "TABLE", "command": "DROP", "commandText": "DROP TABLE dbo.customers"}),
        "destructive-ddl",
    );
    assert_fires(
        SqlServer,
        json!({"class": "TABLE", "command": "DELETE", "commandText": "TRUNCATE TABLE dbo.customers"}),
        "destructive-ddl",
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "DDL", "command": "DROP INDEX", "commandText": "DROP INDEX i"}),
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "DDL", "command": "DROP TABLE", "dbUserName": "rdsadmin"}),
    );
}

#[test]
fn failed_logins_are_matched_in_every_engine_and_successful_ones_are_not() {
    use Engine::*;
    let r = "auth-failure-burst";
    assert_fires(
        AuroraPostgresql,
        json!({"class": "MISC", "command": "AUTH FAILURE", "commandText": null}),
        r,
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "FAILED_CONNECT", "exitCode": "1045", "commandText": ""}),
        r,
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "CONNECT", "exitCode": "1045", "commandText": ""}),
        r,
    );
    assert_fires(
        Oracle,
        json!({"command": "LOGON", "exitCode": 1017, "commandText": null}),
        r,
    );
    assert_fires(
        SqlServer,
        json!({"class": "LOGIN", "command": "LOGIN FAILED", "exitCode": 0}),
        r,
    );
    assert_silent(
        AuroraMysql,
        json!({"class": "MAIN", "command": "CONNECT", "exitCode": "0", "commandText": ""}),
    );
    assert_silent(Oracle, json!({"command": "LOGON", "exitCode": 0, "commandText": null}));
    assert_silent(
        SqlServer,
        json!({"class": "LOGIN", "command": "LOGIN SUCCEEDED", "exitCode": 1}),
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "CONNECT", "command": "CONNECT", "commandText": null}),
    );
}

#[test]
fn audit_tampering_is_matched_in_every_engine_even_for_rdsadmin() {
    use Engine::*;
    let r = "audit-tampering";
    assert_fires(
        AuroraPostgresql,
        json!({"class": "MISC", "command": "SET", "commandText": "SET pgaudit.log = 'none'"}),
        r,
    );
    assert_fires(
        AuroraPostgresql,
        json!({"class": "MISC", "command": "ALTER SYSTEM", "commandText": "ALTER SYSTEM SET log_statement = 'none'", "dbUserName": "rdsadmin"}),
        r,
    );
    let both = event(
        AuroraPostgresql,
        json!({"class": "ROLE", "command": "ALTER ROLE", "commandText": "ALTER ROLE app SET pgaudit.log TO 'none'"}),
    );
    assert_eq!(fired(&pack(), &both), ["privilege-change", "audit-tampering"]);
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "SET GLOBAL server_audit_logging = OFF"}),
        r,
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "UNINSTALL PLUGIN server_audit"}),
        r,
    );
    assert_fires(
        Oracle,
        json!({"command": "NOAUDIT", "commandText": "NOAUDIT POLICY ORA_LOGON_FAILURES"}),
        r,
    );
    assert_fires(
        Oracle,
        json!({"command": "EXECUTE", "commandText": "BEGIN DBMS_AUDIT_MGMT.CLEAN_AUDIT_TRAIL(1, FALSE); END;"}),
        r,
    );
    assert_fires(
        SqlServer,
        json!({"class": "SERVER AUDIT", "command": "ALTER", "commandText": "ALTER SERVER AUDIT a WITH (STATE = OFF)"}),
        r,
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "MISC", "command": "SET", "commandText": "SET search_path = app"}),
    );
}

#[test]
fn bulk_exports_are_matched_in_every_engine() {
    use Engine::*;
    let r = "bulk-export";
    assert_fires(
        AuroraPostgresql,
        json!({"class": "READ", "command": "COPY", "commandText": "COPY customers TO STDOUT"}),
        r,
    );
    assert_fires(
        AuroraPostgresql,
        json!({"class": "READ", "command": "SELECT", "commandText": "SELECT * FROM aws_s3.query_export_to_s3('select * from customers', 'b')", "objectName": "customers"}),
        r,
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "MAIN", "command": "QUERY", "commandText": "SELECT * FROM customers INTO OUTFILE S3 's3://b/x'"}),
        r,
    );
    assert_fires(Oracle, json!({"class": "Datapump", "command": "EXPORT"}), r);
    assert_fires(
        SqlServer,
        json!({"class": "OBJECT", "command": "EXECUTE", "commandText": "exec msdb.dbo.rds_backup_database @source_db_name='shop'"}),
        r,
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "WRITE", "command": "COPY", "commandText": "COPY customers FROM STDIN"}),
    );
}

#[test]
fn catalog_reads_are_matched_in_every_engine() {
    use Engine::*;
    let r = "catalog-enumeration";
    assert_fires(
        AuroraPostgresql,
        json!({"class": "READ", "command": "SELECT", "objectName": "pg_catalog.pg_class"}),
        r,
    );
    assert_fires(
        AuroraMysql,
        json!({"class": "AUX", "command": "READ", "databaseName": "information_schema", "objectName": "TABLES"}),
        r,
    );
    assert_fires(Oracle, json!({"command": "SELECT", "objectName": "DBA_USERS"}), r);
    assert_fires(
        SqlServer,
        json!({"command": "SELECT", "commandText": "SELECT name FROM sys.objects"}),
        r,
    );
    assert_silent(
        AuroraPostgresql,
        json!({"class": "READ", "command": "SELECT", "objectName": "pg_catalog.pg_class", "dbUserName": "rdsadmin"}),
    );
}

fn failed_login(seq: u64, user: &str, host: &str, second: u64) -> Map<String, Value> {
    event(
        Engine::AuroraPostgresql,
        json!({"class": "MISC", "command": "AUTH FAILURE", "commandText": null, "dbUserName": user, "remoteHost": host,
               "logTime": format!("2026-12-08 01:{:02}:{:02}.000000+00", second / 60, second % 60), "seq": seq}),
    )
}

/// Runs `events` through a fresh detector in the given batches, each event with its provenance.
fn detect(batches: &[Vec<Map<String, Value>>]) -> Vec<Finding> {
    let mut detector = Detector::new(pack());
    let mut findings = Vec::new();
    for batch in batches {
        for e in batch {
            let seq = e["seq"].to_string();
            let origin = EventOrigin {
                resource_id: RESOURCE,
                shard: Some("shardId-000000000000"),
                sequence: Some(&seq),
                index: Some(0),
            };
            findings.extend(detector.observe(e, &origin, &|| Value::Object(e.clone())));
        }
    }
    findings
}

#[test]
fn a_failed_login_burst_fires_exactly_once_per_key_and_window_however_it_is_batched() {
    // Five failures for mallory from five hosts, in the window 01:05:00–01:09:59.
    let burst: Vec<_> = (0..5)
        .map(|i| failed_login(i, "mallory", &format!("10.0.0.{i}"), 300 + i * 50))
        .collect();
    let mut reversed = burst.clone();
    reversed.reverse();
    let splits = [
        vec![burst.clone()],
        vec![reversed],
        vec![burst[..2].to_vec(), burst[2..3].to_vec(), burst[3..].to_vec()],
        vec![
            vec![burst[4].clone(), burst[0].clone()],
            vec![burst[2].clone(), burst[1].clone(), burst[3].clone()],
        ],
        // a retried batch: the same events again count once
        vec![
            burst[..3].to_vec(),
            burst[..3].to_vec(),
            burst[3..].to_vec(),
            burst.clone(),
        ],
    ];
    let mut ids = Vec::new();
    for split in &splits {
        let findings = detect(split);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(
            (f.rule_id.as_str(), f.severity, f.count),
            ("auth-failure-burst", "HIGH", 5)
        );
        assert_eq!(f.db_user_name.as_deref(), Some("mallory"));
        assert_eq!(f.events.len(), 5);
        assert_eq!(f.finding_id.len(), 32);
        assert!(f.finding_id.bytes().all(|b| b.is_ascii_hexdigit()));
        ids.push(f.finding_id.clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let ordered = detect(&splits[0]);
    assert_eq!(ordered[0].first_seen.as_deref(), Some("2026-12-08T01:05:00.000Z"));
    assert_eq!(ordered[0].last_seen.as_deref(), Some("2026-12-08T01:08:20.000Z"));
}

#[test]
fn a_burst_counts_per_remote_host_too_and_below_the_threshold_nothing_fires() {
    let from_one_host: Vec<_> = (0..6)
        .map(|i| failed_login(i, &format!("user{i}"), "203.0.113.9", 300 + i))
        .collect();
    let findings = detect(&[from_one_host]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].remote_host.as_deref(), Some("203.0.113.9"));
    assert_eq!(findings[0].count, 5);
    let four: Vec<_> = (0..4)
        .map(|i| failed_login(i, "mallory", "10.0.0.1", 300 + i))
        .collect();
    // four from mallory@10.0.0.1 in one window, then one in the next window: tumbling windows, no finding
    let next_window = failed_login(9, "mallory", "10.0.0.1", 601);
    assert!(detect(&[four, vec![next_window]]).is_empty());
}

#[test]
fn the_finding_id_depends_on_rule_resource_key_and_window_only() {
    let a = counter::finding_id("auth-failure-burst", RESOURCE, "dbUserName=mallory", 1_795_000_200);
    assert_eq!(
        a,
        counter::finding_id("auth-failure-burst", RESOURCE, "dbUserName=mallory", 1_795_000_200)
    );
    for other in [
        counter::finding_id("privilege-change", RESOURCE, "dbUserName=mallory", 1_795_000_200),
        counter::finding_id("auth-failure-burst", "db-OTHER", "dbUserName=mallory", 1_795_000_200),
        counter::finding_id("auth-failure-burst", RESOURCE, "dbUserName=eve", 1_795_000_200),
        counter::finding_id("auth-failure-burst", RESOURCE, "dbUserName=mallory", 1_795_000_500),
    ] {
        assert_ne!(a, other);
    }
}

#[test]
fn a_distinct_count_counts_values_not_events() {
    let rules = RuleSet::parse(
        r#"{"rules":[{"id":"many-tables","title":"t","severity":"LOW","match":{"class":"READ"},
            "count":{"distinct":"objectName","atLeast":3,"within":60,"by":["dbUserName"]}}]}"#,
    )
    .unwrap();
    let mut detector = Detector::new(rules);
    let origin = EventOrigin {
        resource_id: RESOURCE,
        ..EventOrigin::default()
    };
    let mut fired = 0;
    for table in ["a", "a", "b", "b", "c", "d"] {
        let e = event(
            Engine::AuroraPostgresql,
            json!({"objectName": table, "logTime": "2026-12-08 01:00:01+00"}),
        );
        fired += detector.observe(&e, &origin, &|| json!({})).len();
    }
    assert_eq!(fired, 1);
}

#[test]
fn benign_traffic_of_every_engine_raises_nothing() {
    for engine in Engine::ALL {
        let mut detector = Detector::new(pack());
        let mut sim = Simulator::new(engine, RESOURCE, "db-X", 42);
        let mut events = sim.events(3_000);
        events.extend((0..50).map(|_| sim.event(Activity::Login)));
        let origin = EventOrigin {
            resource_id: RESOURCE,
            ..EventOrigin::default()
        };
        for e in events {
            let e = e.as_object().unwrap();
            let findings = detector.observe(e, &origin, &|| json!({}));
            assert!(findings.is_empty(), "{engine:?}: {findings:?}");
        }
    }
}

#[test]
fn rdsadmin_housekeeping_raises_nothing() {
    let mut detector = Detector::new(pack());
    let origin = EventOrigin {
        resource_id: RESOURCE,
        ..EventOrigin::default()
    };
    let housekeeping = [
        json!({"class": "READ", "command": "SELECT", "objectName": "pg_catalog.pg_stat_activity", "commandText": "select * from pg_stat_activity"}),
        json!({"class": "MISC", "command": "VACUUM", "objectName": null, "commandText": "VACUUM ANALYZE"}),
        json!({"class": "ROLE", "command": "GRANT", "commandText": "GRANT rds_superuser TO postgres"}),
        json!({"class": "DDL", "command": "DROP TABLE", "commandText": "DROP TABLE rds_heartbeat2"}),
        json!({"class": "CONNECT", "command": "CONNECT", "commandText": null}),
    ];
    for i in 0..100 {
        let mut e = event(Engine::AuroraPostgresql, housekeeping[i % housekeeping.len()].clone());
        e.insert("dbUserName".into(), json!("rdsadmin"));
        e.insert("logTime".into(), json!("2026-12-08 01:00:01+00"));
        assert!(detector.observe(&e, &origin, &|| json!({})).is_empty());
    }
}

#[test]
fn the_decoded_event_view_matches_like_the_archived_line() {
    let line = event(
        Engine::Oracle,
        json!({"command": "LOGON", "exitCode": 1017, "commandText": null}),
    );
    let payload = crate::pipeline::activity::payload_json("", "db-X", &[Value::Object(line.clone())]);
    let record = ActivityRecord::parse(&payload, ParseLimits::default()).unwrap();
    let decoded = &record.events[0];
    assert_eq!(decoded.field(Field::ExitCode).as_deref(), Some("1017"));
    assert_eq!(pack().evaluate(decoded), pack().evaluate(&line));
    assert_eq!(pack().evaluate(decoded), vec![2]);
}

fn mistakes(text: &str) -> Vec<(usize, usize, String)> {
    RuleSet::parse(text)
        .unwrap_err()
        .errors
        .into_iter()
        .map(|m| (m.line, m.column, m.message))
        .collect()
}

#[test]
fn every_kind_of_mistake_is_reported_with_its_line_and_column() {
    let rule = |body: &str| format!("{{\"rules\": [\n  {{\"id\": \"r\", \"title\": \"t\",\n   {body}}}\n]}}");
    let cases = [
        (
            rule(r#""severity": "SEVERE", "match": {}"#),
            3,
            "unknown severity `SEVERE`",
        ),
        (
            rule(r#""severity": "LOW", "match": {}, "colour": 1"#),
            3,
            "unknown field `colour`",
        ),
        (
            rule(r#""severity": "LOW", "match": {"regex": "(unclosed"}"#),
            3,
            "invalid regex",
        ),
        (
            rule(r#""severity": "LOW", "match": {"comand": "X"}"#),
            3,
            "unknown field or operator `comand`",
        ),
        (
            rule(r#""severity": "LOW", "match": {}, "count": {"within": 60}"#),
            3,
            "missing field `atLeast`",
        ),
        (
            rule(r#""severity": "LOW", "match": {}, "count": {"atLeast": 0, "within": 60}"#),
            3,
            "nonzero",
        ),
        (
            rule(r#""severity": "LOW", "match": {}, "count": {"atLeast": 2, "within": 60, "by": ["user"]}"#),
            3,
            "unknown field `user`",
        ),
        (
            rule(r#""severity": "LOW", "match": {"any": []}"#),
            3,
            "an empty `any` list",
        ),
        (
            "{\"rules\": [\n  {\"id\": \"r\",, }]}".to_owned(),
            2,
            "key must be a string",
        ),
        ("{\"rulez\": []}".to_owned(), 1, "unknown field `rulez`"),
    ];
    for (text, line, needle) in cases {
        let found = mistakes(&text);
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        let (l, c, message) = &found[0];
        assert_eq!(*l, line, "{text}: {message}");
        assert!(*c > 1, "{text}: column {c}");
        assert!(message.contains(needle), "{text}: {message}");
    }
}

#[test]
fn a_column_points_at_the_mistake_and_every_bad_rule_is_reported() {
    let text = "{\"rules\": [\n {\"id\": \"a\", \"title\": \"t\", \"severity\": \"HI\", \"match\": {}},\n {\"id\": \"b\", \"title\": \"t\", \"severity\": \"LOW\", \"match\": {\"regex\": \"[\"}},\n {\"id\": \"a\", \"title\": \"t\", \"severity\": \"LOW\", \"match\": {}},\n {\"id\": \"a\", \"title\": \"t\", \"severity\": \"LOW\", \"match\": {}}\n]}";
    let found = mistakes(text);
    assert_eq!(found.len(), 3, "{found:?}");
    // `"HI"` ends at byte 43 of line 2: serde_json points at the bad value's last character.
    assert_eq!((found[0].0, found[0].1), (2, 43), "{found:?}");
    assert_eq!(found[1].0, 3);
    assert_eq!((found[2].0, found[2].1), (5, 2));
    assert!(found[2].2.contains("a second rule with the id `a`"));
    let whole = RuleSet::parse(text).unwrap_err().to_string();
    assert!(whole.starts_with("line 2, column 43: unknown severity `HI`"), "{whole}");
}

#[test]
fn the_finding_id_is_the_first_32_hex_digits_of_sha_256_over_its_parts() {
    // python3: hashlib.sha256(b"auth-failure-burst\0cluster-…\0dbUserName=mallory\x001795000200\0").hexdigest()[:32]
    assert_eq!(
        counter::finding_id("auth-failure-burst", RESOURCE, "dbUserName=mallory", 1_795_000_200),
        "62fff7d27fc6f0a51180007c3b4bbec6"
    );
}

#[test]
fn the_readme_example_rules_file_is_valid() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("### The rules format").unwrap()..];
    let start = section.find("```json\n").unwrap() + "```json\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let rules = RuleSet::parse(example).unwrap();
    assert_eq!(rules.rules().len(), 3);
}

#[test]
fn regular_expressions_run_after_the_field_checks_of_their_object() {
    let rules = RuleSet::parse(r#"{"rules":[{"id":"r","title":"t","severity":"LOW","match":{"regex":"x","command":"A","not":{"regex":"y"}}}]}"#)
        .unwrap();
    let Expr::All(parts) = &rules.rules()[0].matcher else {
        panic!("an object of three keys is an `all`")
    };
    assert!(matches!(parts[0], Expr::Glob(Field::Command, _)), "{parts:?}");
    assert!(parts[1..].iter().all(Expr::costly));
}

#[test]
fn a_regex_on_a_literal_matches_the_decoded_event_but_not_its_masked_archive_line() {
    use crate::pipeline::mask::{mask_sql, Dialect, MaskMode};
    let rules =
        RuleSet::parse(r#"{"rules":[{"id":"r","title":"t","severity":"LOW","match":{"regex":"'admin'"}}]}"#).unwrap();
    let text = "SELECT * FROM users WHERE name = 'admin'";
    let decoded = event(Engine::AuroraPostgresql, json!({"commandText": text}));
    let masked = event(
        Engine::AuroraPostgresql,
        json!({"commandText": mask_sql(text, Dialect::Postgres, MaskMode::Literals)}),
    );
    assert_eq!(rules.evaluate(&decoded), vec![0]);
    assert!(rules.evaluate(&masked).is_empty());
}
