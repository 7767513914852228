//! Which OCSF `activity_id` and `status_id` a DAS event gets, per engine: the table of the README
//! section "OCSF for Amazon Security Lake", as code. Pure string rules; no I/O, never panics.

/// The OCSF 1.1.0 Datastore Activity `activity_id` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Activity {
    /// 1: the statement reads data (`SELECT`, PostgreSQL class `READ`, MySQL AUX `READ`).
    Read = 1,
    /// 2: the statement changes existing rows or objects (`UPDATE`, `ALTER …`, `RENAME`, `GRANT`, …).
    Update = 2,
    /// 3: a session starts or ends, or fails to (`CONNECT`, `LOGON`, `LOGIN FAILED`, …).
    Connect = 3,
    /// 4: a statement whose effect the event does not tell (Aurora MySQL's MAIN `QUERY` event; its
    /// AUX events tell what it read or wrote).
    Query = 4,
    /// 5: the statement adds rows (`INSERT`, `COPY` into a table, `MERGE`, MySQL AUX `WRITE`).
    Write = 5,
    /// 6: the statement creates an object (`CREATE …`).
    Create = 6,
    /// 7: the statement removes rows or objects (`DELETE`, `TRUNCATE`, `DROP …`).
    Delete = 7,
    /// 99: anything else (`SET`, `BEGIN`, `EXECUTE`, `VACUUM`, …); `activity_name` then holds the
    /// DAS `command`.
    Other = 99,
}

impl Activity {
    /// The OCSF `activity_id`.
    pub fn id(self) -> i64 {
        self as i64
    }

    /// The OCSF caption, used for `activity_name` (except for `Other`).
    pub fn caption(self) -> &'static str {
        match self {
            Self::Read => "Read",
            Self::Update => "Update",
            Self::Connect => "Connect",
            Self::Query => "Query",
            Self::Write => "Write",
            Self::Create => "Create",
            Self::Delete => "Delete",
            Self::Other => "Other",
        }
    }
}

/// The engine an event comes from, told by its `serverType` (then `dbProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Aurora PostgreSQL (`serverType` `PostgreSQL`).
    Postgresql,
    /// Aurora MySQL (`serverType` `MySQL`).
    Mysql,
    /// RDS for Oracle (`serverType` `oracle`).
    Oracle,
    /// RDS for SQL Server (`serverType` `SQLSERVER`).
    SqlServer,
    /// Anything else: the command rules alone apply.
    Unknown,
}

impl Dialect {
    /// Tells the engine from `serverType`, else `dbProtocol` (case ignored).
    pub fn detect(server_type: Option<&str>, db_protocol: Option<&str>) -> Self {
        for value in [server_type, db_protocol].into_iter().flatten() {
            let value = value.to_ascii_lowercase();
            if value.starts_with("postgres") {
                return Self::Postgresql;
            }
            if value.starts_with("mysql") {
                return Self::Mysql;
            }
            if value.starts_with("oracle") {
                return Self::Oracle;
            }
            if value.starts_with("sqlserver") {
                return Self::SqlServer;
            }
        }
        Self::Unknown
    }
}

/// Commands that open, close or fail to open a session, in every engine's words.
const CONNECT_COMMANDS: &[&str] = &[
    "CONNECT",
    "DISCONNECT",
    "FAILED_CONNECT",
    "CHANGEUSER",
    "LOGON",
    "LOGOFF",
    "LOGOFF BY CLEANUP",
    "LOGIN SUCCEEDED",
    "LOGIN FAILED",
    "LOGOUT",
];

/// The `activity_id` of an event from its engine, `class` and `command` (see the README table).
///
/// Order: session commands; Aurora MySQL's MAIN `QUERY`; the command's first word; then
/// PostgreSQL's `class` (`READ`, `WRITE`, `ROLE`, `CONNECT`); otherwise `Other`.
pub fn activity(dialect: Dialect, class: Option<&str>, command: Option<&str>) -> Activity {
    let class = class.map(|c| c.trim().to_ascii_uppercase()).unwrap_or_default();
    let command = command.map(|c| c.trim().to_ascii_uppercase()).unwrap_or_default();
    if CONNECT_COMMANDS.contains(&command.as_str()) || (dialect == Dialect::Postgresql && class == "CONNECT") {
        return Activity::Connect;
    }
    if dialect == Dialect::Mysql && command == "QUERY" {
        return Activity::Query;
    }
    let first_word = command.split_whitespace().next().unwrap_or_default();
    let by_command = match first_word {
        "SELECT" | "READ" => Some(Activity::Read),
        "INSERT" | "WRITE" | "MERGE" | "REPLACE" | "UPSERT" => Some(Activity::Write),
        "UPDATE" | "ALTER" | "RENAME" | "GRANT" | "REVOKE" => Some(Activity::Update),
        "DELETE" | "TRUNCATE" | "DROP" => Some(Activity::Delete),
        "CREATE" => Some(Activity::Create),
        // COPY reads a table (COPY … TO) or writes one (COPY … FROM); PostgreSQL's class says which.
        "COPY" if class == "WRITE" => Some(Activity::Write),
        "COPY" if class == "READ" => Some(Activity::Read),
        _ => None,
    };
    if let Some(activity) = by_command {
        return activity;
    }
    match (dialect, class.as_str()) {
        (Dialect::Postgresql, "READ") => Activity::Read,
        (Dialect::Postgresql, "WRITE") => Activity::Write,
        (Dialect::Postgresql, "ROLE") => Activity::Update,
        _ => Activity::Other,
    }
}

/// The OCSF `status_id` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// 0: the event tells neither (PostgreSQL writes `exitCode` null; MySQL AUX events `""`).
    Unknown = 0,
    /// 1: the statement or login succeeded.
    Success = 1,
    /// 2: it failed.
    Failure = 2,
}

impl Status {
    /// The OCSF `status_id`.
    pub fn id(self) -> i64 {
        self as i64
    }

    /// The OCSF caption, used for `status`.
    pub fn caption(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Success => "Success",
            Self::Failure => "Failure",
        }
    }
}

/// The status of an event from its `exitCode`, `errorMessage` and `command`.
///
/// SQL Server's `exitCode` is its audit `succeeded` flag (1 success, 0 failure); every other engine's
/// is a return code (0 success, anything else failure). Without an exit code a non-empty
/// `errorMessage`, `LOGIN FAILED` or `FAILED_CONNECT` mean failure, and nothing means unknown.
pub fn status(dialect: Dialect, exit_code: Option<&str>, error_message: Option<&str>, command: Option<&str>) -> Status {
    let command = command.map(|c| c.trim().to_ascii_uppercase()).unwrap_or_default();
    if command == "LOGIN FAILED" || command == "FAILED_CONNECT" {
        return Status::Failure;
    }
    let code = exit_code.map(str::trim).filter(|c| !c.is_empty());
    if let Some(code) = code {
        let success = if dialect == Dialect::SqlServer { "1" } else { "0" };
        return if code == success {
            Status::Success
        } else {
            Status::Failure
        };
    }
    if error_message.is_some_and(|m| !m.trim().is_empty()) {
        Status::Failure
    } else {
        Status::Unknown
    }
}
