//! The OCSF mapping through the public API: every row of the README's `activity_id` table, and
//! properties that hold for every event of the corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::ocsf_corpus;

use das_archiver::pipeline::filter::FilterSpec;
use das_archiver::pipeline::ocsf::{rules, Dialect};
use ocsf_corpus::{all_events, map_payload, row_event, ROWS};
use serde_json::Value;

#[test]
fn every_row_of_the_readme_activity_table_gives_its_activity_id() {
    for row in ROWS {
        let dialect = Dialect::detect(Some(row.server_type), None);
        let activity = rules::activity(dialect, Some(row.class), Some(row.command));
        assert_eq!(
            activity.id(),
            row.activity_id,
            "{} {} {}",
            row.server_type,
            row.class,
            row.command
        );
        let mapped = map_payload(&[row_event(row)], &FilterSpec::default(), "1")
            .remove(0)
            .unwrap();
        assert_eq!(
            mapped["activity_id"], row.activity_id,
            "{} {}",
            row.server_type, row.command
        );
        assert_eq!(mapped["type_uid"], 600_500 + row.activity_id);
    }
}

#[test]
fn the_readme_table_names_every_tested_command() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## OCSF for Amazon Security Lake")
        .expect("the README section");
    let section = &readme[start..];
    for row in ROWS {
        let named = section.contains(&format!("`{}`", row.command))
            || section.contains(&format!("`{}`", row.class))
            || section.contains(&format!("`{} …`", row.command.split(' ').next().unwrap()));
        assert!(named, "the README table does not name {} {}", row.class, row.command);
    }
}

#[test]
fn every_event_has_a_unique_uid_and_only_strings_in_unmapped() {
    let events = all_events();
    let mut uids = std::collections::HashSet::new();
    for event in &events {
        let uid = event["metadata"]["uid"].as_str().unwrap().to_owned();
        let spec_marked = format!("{uid}/{}", event["metadata"]["correlation_uid"]);
        assert!(uids.insert(spec_marked), "duplicate uid {uid}");
        if let Some(unmapped) = event.get("unmapped") {
            assert!(
                unmapped.as_object().unwrap().values().all(Value::is_string),
                "{unmapped}"
            );
        }
        assert!(event["time"].is_i64());
    }
    assert!(events.len() > 2_000, "{}", events.len());
}

#[test]
fn dropped_fields_never_reach_an_ocsf_event() {
    let spec = &ocsf_corpus::specs()[1];
    let events = ocsf_corpus::map_payload(&ocsf_corpus::odd_events(), spec, "9");
    let rows: Vec<Value> = ROWS.iter().map(row_event).collect();
    for event in events.into_iter().chain(map_payload(&rows, spec, "8")).flatten() {
        assert!(event.get("query_info").is_none(), "{event}");
        let text = event.to_string();
        assert!(
            !text.contains("paramList") && !text.contains("SELECT abalance"),
            "{text}"
        );
    }
}
