//! `kern audit`: verify the trail, export it as JSON lines or CSV.

use crate::harness::each_backend;
use crate::seed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_verifies_and_exports() {
    each_backend(|db| async move {
        let store = db.open().await;
        let agent = seed::agent(store.shared());
        let (_, id) = seed::pause(&agent, "delete user 42", "user-1").await;
        db.kern(&["approvals", "approve", &id, "--as", "alice"]).ok();

        let verified = db.kern(&["audit", "verify", "--json"]).json();
        assert_eq!((verified["ok"].as_bool(), verified["rows"].as_u64()), (Some(true), Some(1)));
        assert!(db.kern(&["audit", "verify"]).ok().contains("trail intact"));

        let exported = db.kern(&["audit", "export", "--format", "jsonl"]);
        let events: Vec<serde_json::Value> =
            exported.ok().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
        // A decision as a principal is its vote, and the approval the vote makes.
        assert_eq!(kinds, ["created", "vote", "approved"]);
        assert_eq!(events[2]["principal"], "alice");

        let csv = db.kern(&["audit", "export", "--format", "csv"]);
        let lines: Vec<&str> = csv.ok().lines().collect();
        assert_eq!(lines[0], "seq,at,approval_id,run_id,index,kind,principal,data,prev_hash,hash");
        assert_eq!(lines.len(), 4, "{csv:?}");
        assert!(lines[3].contains(",approved,alice,"), "{csv:?}");

        let none = db.kern(&["audit", "export", "--since", "2999-01-01T00:00:00Z"]);
        assert_eq!(none.ok(), "");
        db.kern(&["audit", "export", "--format", "xml"]).fails(2);
        store.close().await;
    })
    .await;
}
