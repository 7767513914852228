//! A test double of the RDS query API for `das fleet`: moto's RDS has no activity-stream fields
//! (no `ActivityStreamStatus`), so this tiny HTTP server on 127.0.0.1 answers `DescribeDBClusters`
//! and `DescribeDBInstances` with AWS's documented response shape, one database per page (so the
//! client's pagination on `Marker` is exercised). The SDK reaches it through the standard
//! `AWS_ENDPOINT_URL_RDS` setting; every other service still goes to moto through `AWS_ENDPOINT_URL`.
//! It also takes `StopActivityStream` (noting the ARN, for `das stream stop`'s tests,
//! https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_StopActivityStream.html).
//! Any other RDS action is answered with a query-protocol error, so a new call is noticed.
//!
//! The shape (elements `DBClusters/DBCluster`, `DBInstances/DBInstance`, `Marker`, and the fields
//! `DbClusterResourceId`, `DbiResourceId`, `ActivityStreamStatus`, `ActivityStreamKinesisStreamName`,
//! `ActivityStreamMode`, `ActivityStreamKmsKeyId`) follows the RDS API reference and the DAS guide:
//! https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBClusters.html,
//! https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBCluster.html,
//! https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBInstance.html,
//! https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/DBActivityStreams.Status.html and
//! https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/DBActivityStreams.Status.html.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The account and region of every fake ARN: moto's defaults, so stream ARNs match moto's streams.
pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const REGION: &str = "us-east-1";

/// One fake database.
#[derive(Debug, Clone)]
pub(crate) struct FakeDb {
    /// `true` for a DB cluster, `false` for a DB instance.
    pub(crate) cluster: bool,
    pub(crate) name: String,
    /// `cluster-…` or `db-…`.
    pub(crate) resource_id: String,
    /// `ActivityStreamStatus`; `None` leaves the element out, as RDS does for a database that
    /// never had a stream.
    pub(crate) status: Option<String>,
    /// For an instance: its Aurora cluster, if it is a member.
    pub(crate) member_of: Option<String>,
}

impl FakeDb {
    pub(crate) fn cluster(name: &str, resource_id: &str, status: Option<&str>) -> Self {
        Self {
            cluster: true,
            name: name.into(),
            resource_id: resource_id.into(),
            status: status.map(Into::into),
            member_of: None,
        }
    }

    pub(crate) fn instance(name: &str, resource_id: &str, status: Option<&str>) -> Self {
        Self {
            cluster: false,
            ..Self::cluster(name, resource_id, status)
        }
    }

    /// The `<DBCluster>` or `<DBInstance>` element.
    fn xml(&self) -> String {
        let (tag, arn_kind, id_tag, rid_tag) = if self.cluster {
            ("DBCluster", "cluster", "DBClusterIdentifier", "DbClusterResourceId")
        } else {
            ("DBInstance", "db", "DBInstanceIdentifier", "DbiResourceId")
        };
        let mut x = format!(
            "<{tag}><{id_tag}>{name}</{id_tag}><{tag}Arn>arn:aws:rds:{REGION}:{ACCOUNT}:{arn_kind}:{name}</{tag}Arn>\
             <{rid_tag}>{rid}</{rid_tag}><Engine>{engine}</Engine>",
            name = escape(&self.name),
            rid = escape(&self.resource_id),
            engine = if self.cluster { "aurora-postgresql" } else { "oracle-ee" },
        );
        if let Some(cluster) = &self.member_of {
            x.push_str(&format!(
                "<DBClusterIdentifier>{}</DBClusterIdentifier>",
                escape(cluster)
            ));
        }
        if let Some(status) = &self.status {
            x.push_str(&format!(
                "<ActivityStreamStatus>{}</ActivityStreamStatus>",
                escape(status)
            ));
            if status != "stopped" {
                // RDS names the stream, and reports mode and key, while it is not stopped.
                x.push_str(&format!(
                    "<ActivityStreamKinesisStreamName>aws-rds-das-{}</ActivityStreamKinesisStreamName>\
                     <ActivityStreamMode>async</ActivityStreamMode>\
                     <ActivityStreamKmsKeyId>11111111-2222-3333-4444-555555555555</ActivityStreamKmsKeyId>",
                    escape(&self.resource_id)
                ));
            }
        }
        x.push_str(&format!("</{tag}>"));
        x
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The running double; the listener thread lives as long as the test process (each test binds
/// its own port, so doubles share nothing).
pub(crate) struct RdsDouble {
    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL_RDS`.
    pub(crate) endpoint: String,
    /// The `ResourceArn` of every `StopActivityStream` received.
    stops: Arc<Mutex<Vec<String>>>,
}

impl RdsDouble {
    /// Serves `databases` on a free port of 127.0.0.1.
    pub(crate) fn start(databases: Vec<FakeDb>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let databases = Arc::new(databases);
        let stops = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&stops);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (databases, log) = (Arc::clone(&databases), Arc::clone(&log));
                std::thread::spawn(move || serve(stream, &databases, &log));
            }
        });
        Self { endpoint, stops }
    }

    /// The resource ARNs `StopActivityStream` was called with, in order.
    pub(crate) fn stops(&self) -> Vec<String> {
        self.stops.lock().unwrap().clone()
    }
}

/// Answers the requests of one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, databases: &[FakeDb], stops: &Mutex<Vec<String>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(body) = read_request(&mut reader) {
        let form = form(&body);
        let (status, xml) = match stop(&form) {
            Some((arn, xml)) => {
                stops.lock().unwrap().push(arn);
                ("200 OK", xml)
            }
            None => answer(&form, databases),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nx-amzn-requestid: fake\r\n\r\n",
            xml.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(xml.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// The body of the next request, or `None` at the end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut length = 0;
    let mut seen_line = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() && seen_line {
            break;
        }
        seen_line = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// The form fields of a query-protocol body (the values used here need no percent-decoding).
fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A `StopActivityStream` request's ARN (percent-decoded) and the response.
fn stop(form: &[(String, String)]) -> Option<(String, String)> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("Action") != Some("StopActivityStream") {
        return None;
    }
    let arn = field("ResourceArn")
        .unwrap_or_default()
        .replace("%3A", ":")
        .replace("%2F", "/");
    let xml =
        "<StopActivityStreamResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><StopActivityStreamResult>\
               <Status>stopping</Status></StopActivityStreamResult><ResponseMetadata><RequestId>fake</RequestId>\
               </ResponseMetadata></StopActivityStreamResponse>"
            .to_owned();
    Some((arn, xml))
}

fn answer(form: &[(String, String)], databases: &[FakeDb]) -> (&'static str, String) {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (action, clusters) = match field("Action") {
        Some("DescribeDBClusters") => ("DescribeDBClusters", true),
        Some("DescribeDBInstances") => ("DescribeDBInstances", false),
        other => {
            return (
                "400 Bad Request",
                format!(
                    "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>Sender</Type>\
                     <Code>InvalidAction</Code><Message>the RDS test double does not answer {other:?}</Message>\
                     </Error><RequestId>fake</RequestId></ErrorResponse>"
                ),
            )
        }
    };
    let matching: Vec<&FakeDb> = databases.iter().filter(|db| db.cluster == clusters).collect();
    let page: usize = field("Marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let list = if clusters { "DBClusters" } else { "DBInstances" };
    let mut result = format!("<{list}>");
    if let Some(db) = matching.get(page) {
        result.push_str(&db.xml());
    }
    result.push_str(&format!("</{list}>"));
    if page + 1 < matching.len() {
        result.push_str(&format!("<Marker>{}</Marker>", page + 1));
    }
    (
        "200 OK",
        format!(
            "<{action}Response xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><{action}Result>{result}\
             </{action}Result><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}
