//! `kern keys`: the token is shown once, listings never show a secret, revoked keys stay
//! listed.

use kern::keys::parse_token;

use crate::harness::each_backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_and_revoked() {
    each_backend(|db| async move {
        db.kern(&["migrate"]).ok();
        let created = db
            .kern(&[
                "keys",
                "create",
                "--principal",
                "alice",
                "--roles",
                "finance,ops",
                "--scopes",
                "approvals:read,approvals:write",
                "--json",
            ])
            .json();
        let token = created["token"].as_str().unwrap().to_owned();
        let (id, secret) = parse_token(&token).expect("a kern token");
        assert_eq!(created["id"], id);
        assert_eq!(created["roles"], serde_json::json!(["finance", "ops"]));
        assert_eq!(created["scopes"], serde_json::json!(["approvals:read", "approvals:write"]));

        let human = db.kern(&["keys", "create", "--principal", "bob", "--scopes", "admin"]);
        assert!(human.ok().contains("token:") && human.stdout.contains("kern_"), "{human:?}");

        let listed = db.kern(&["keys", "list", "--json"]);
        assert!(!listed.stdout.contains(secret), "a listing shows no secret: {listed:?}");
        let keys = listed.json();
        assert_eq!(keys.as_array().unwrap().len(), 2);
        assert_eq!(keys[0]["principal"], "alice");
        let human = db.kern(&["keys", "list"]);
        assert!(human.ok().contains("alice") && !human.stdout.contains(secret), "{human:?}");

        let revoked = db.kern(&["keys", "revoke", id, "--json"]).json();
        assert!(revoked["revoked_at"].is_string(), "{revoked}");
        let after = db.kern(&["keys", "list", "--json"]).json();
        let after = after.as_array().unwrap();
        assert_eq!(after.len(), 2, "a revoked key stays listed: {after:?}");
        assert!(after.iter().any(|key| key["id"] == id && key["revoked_at"].is_string()), "{after:?}");
        db.kern(&["keys", "revoke", "no-such-key"]).fails(4);
        db.kern(&["keys", "create", "--principal", "carol", "--scopes", "everything"]).fails(2);
        db.kern(&["keys", "create", "--principal", "carol"]).fails(2);
        // `--role` is the decider's, one letter from the key's `--roles`: refused, not dropped.
        let mistaken =
            ["keys", "create", "--principal", "carol", "--as", "admin", "--role", "ops", "--scopes", "admin"];
        assert!(db.kern(&mistaken).fails(2).contains("--roles"));
    })
    .await;
}
