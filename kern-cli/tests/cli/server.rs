//! `--server`: the same commands through a kern server over the same database, decided as
//! the API key's principal, its answers mapped to the same exit codes.

use std::io::Write as _;
use std::process::Stdio;

use chrono::{TimeDelta, Utc};
use kern::keys::{ApiKey, Scope};
use kern::prelude::*;
use kern::run::RunRecord;
use kern_server::{Auth, Server};

use crate::harness::{Ran, Running, TestDb, kern_command};
use crate::seed::{self, Scene, each_scene};

/// Runs `kern --server URL --api-key KEY <args>`.
fn through(url: &str, key: &str, args: &[&str]) -> Ran {
    Ran::from(kern_command().args(["--server", url, "--api-key", key]).args(args).output().expect("run kern"))
}

/// Serves `db` on a free loopback port, for as long as the tests run; returns its URL. The
/// server has a runtime of its own: a test waits for the binary without yielding to its own.
fn serve(db: &TestDb) -> String {
    let (sender, url) = std::sync::mpsc::channel();
    let db = db.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime for the server");
        runtime.block_on(async move {
            let store = db.open().await;
            let server = Server::builder().store(store.shared()).auth(Auth::api_keys()).build().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
            server.serve(listener).await
        })
    });
    url.recv().expect("the server starts")
}

/// A server that is not kern's: it answers every request with `answer` (a status line, and a
/// JSON body or none). Returns its URL.
fn not_kern(answer: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let (status, body) = answer.split_once('\n').unwrap_or((answer, ""));
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, response.as_bytes());
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_decided_through_a_server_as_the_keys_principal() {
    each_scene(|Scene { db, store, agent }| async move {
        let (run, id) = seed::pause(&agent, "delete user 42", "user-1").await;
        let (_, paid) = seed::pause(&agent, "pay acme", "user-1").await;
        let admin = ApiKey::issue("carol", Vec::new(), vec![Scope::Admin]);
        store.save_api_key(&admin.key).await.unwrap();
        let url = serve(&db);
        let key = admin.token.as_str();

        let page = through(&url, key, &["approvals", "list", "--status", "pending", "--json"]).json();
        assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
        let shown = through(&url, key, &["approvals", "show", &id, "--json"]).json();
        assert_eq!(
            (shown["tool_name"].as_str(), shown["run_status"].as_str()),
            (Some("delete_user_data"), Some("paused"))
        );

        // Over a server the key's principal decides: `--as` is refused.
        through(&url, key, &["approvals", "approve", &id, "--as", "alice"]).fails(2);
        let approved = through(&url, key, &["approvals", "approve", &id, "--note", "ok", "--json"]).json();
        assert_eq!((approved["status"].as_str(), approved["resolved_by"].as_str()), (Some("approved"), Some("carol")));
        through(&url, key, &["approvals", "approve", &id]).fails(3);
        through(&url, key, &["approvals", "show", "no-such-row"]).fails(4);
        // A note alone on a call that waits for a value named `note` stays the admin's.
        let (tagging, tagged) = seed::pause(&agent, "tag c-7", "user-1").await;
        through(&url, key, &["approvals", "approve", &tagged, "--note", "checked"]).ok();
        let row = store.get_approval(&tagged).await.unwrap().unwrap();
        assert_eq!((row.note(), row.user_input_values().map(|values| values.len())), (Some("checked"), Some(0)));
        let done = agent.continue_run(&tagging.run_id, Vec::new()).await.unwrap();
        assert_eq!(done.tools[0].result, Some(serde_json::json!("tagged c-7: ")), "no value named `note` given");
        let refused = through(&url, key, &["approvals", "approve", &paid]);
        assert!(refused.fails(5).contains("finance"), "{refused:?}");
        let rejected = through(&url, key, &["approvals", "cancel", &paid, "--json"]);
        assert_eq!(rejected.code, 5, "cancelling is deciding too: {rejected:?}");

        let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed);
        let shown = through(&url, key, &["runs", "show", &run.run_id, "--json"]).json();
        assert_eq!(shown["status"], "completed");
        // Through a server as on the database, value for value.
        assert_eq!(shown, db.kern(&["runs", "show", &run.run_id, "--json"]).json());
        let listed = |ran: Ran| ran.json()["items"].clone();
        let on_db = listed(db.kern(&["runs", "list", "--json"]));
        assert_eq!(listed(through(&url, key, &["runs", "list", "--json"])), on_db);
        let approval = db.kern(&["approvals", "show", &id, "--json"]).json();
        assert_eq!(through(&url, key, &["approvals", "show", &id, "--json"]).json(), approval);
        through(&url, key, &["runs", "show", "no-such-run"]).fails(4);
        // An id is one segment of the path, whatever it holds: not `GET /runs/x/cancel` (405)
        // or `GET /keys` (200).
        through(&url, key, &["runs", "show", "x/cancel"]).fails(4);
        through(&url, key, &["approvals", "show", "../keys"]).fails(4);
        through(&url, key, &["runs", "show", "x?y#z"]).fails(4);
        // Nor a dot segment, which a URL would drop or step up by: `GET /` (the inbox) or
        // `POST /runs/cancel` (405).
        for dots in ["", ".", ".."] {
            assert!(through(&url, key, &["runs", "show", dots]).fails(4).contains("nothing is named"));
            assert!(through(&url, key, &["runs", "cancel", dots]).fails(4).contains("nothing is named"));
        }
        assert_eq!(through(&url, key, &["audit", "verify", "--json"]).json()["ok"], true);
        // A 404 that is not kern's (a proxy's, say) is no verdict on the row.
        let elsewhere = not_kern("404 Not Found");
        let lost = through(&elsewhere, key, &["approvals", "show", &id]);
        assert!(lost.fails(1).contains("kern server"), "{lost:?}");
        // Nor is an answer without what kern's server always sends shown as blanks.
        // A row the server could not read is warned of, as on a database, and the rest listed.
        let elsewhere = not_kern("200 OK\n{\"data\": [], \"meta\": {\"unreadable\": [\"row-9\"]}}");
        let warned = through(&elsewhere, key, &["approvals", "list", "--json"]);
        assert_eq!(warned.json()["items"].as_array().map(Vec::len), Some(0), "{warned:?}");
        // With `--json`, as a JSON object on standard error, as failures are told.
        let warning: serde_json::Value = serde_json::from_str(warned.stderr.trim()).expect("a JSON warning");
        assert!(warning["warning"].as_str().unwrap().starts_with("row row-9 cannot be read"), "{warned:?}");
        // A watch through what answers no event stream says so, rather than reopen it forever.
        let elsewhere = not_kern("200 OK\n{}");
        let watched = through(&elsewhere, key, &["approvals", "watch"]);
        assert!(watched.fails(1).contains("not an event stream"), "{watched:?}");
        let elsewhere = not_kern("200 OK\n{\"data\": [{}]}");
        let blank = through(&elsewhere, key, &["runs", "list", "--json"]);
        assert!(blank.fails(1).contains("no `run_id`"), "{blank:?}");
        // `--server` on the command line wins over a database in the environment.
        let beside = kern_command()
            .env("KERN_DATABASE_URL", "sqlite://elsewhere.db")
            .args(["--server", &url, "--api-key", key, "audit", "verify", "--json"])
            .output()
            .expect("run kern");
        assert_eq!(Ran::from(beside).json()["ok"], true);
        // The key may come from a file, kept out of the process list.
        let file = std::env::temp_dir().join(format!("kern-key-{}", std::process::id()));
        std::fs::write(&file, format!("{key}\n")).unwrap();
        let from_file = kern_command()
            .args(["--server", &url, "--api-key-file", file.to_str().unwrap(), "audit", "verify", "--json"])
            .output()
            .expect("run kern");
        assert_eq!(Ran::from(from_file).json()["ok"], true);
        std::fs::write(&file, "\n").unwrap();
        let mut empty = kern_command();
        empty.args(["--server", &url, "--api-key-file", file.to_str().unwrap(), "audit", "verify"]);
        assert!(Ran::from(empty.output().expect("run kern")).fails(2).contains("holds no API key"));
        std::fs::remove_file(&file).unwrap();

        let runs = through(&url, key, &["runs", "list", "--status", "paused", "--json"]).json();
        let listed: Vec<&str> =
            runs["items"].as_array().unwrap().iter().map(|run| run["run_id"].as_str().unwrap()).collect();
        assert_eq!(listed.len(), 1, "{runs}");
        assert_eq!(runs["items"][0]["waiting_on"][0], paid.as_str());
        assert!(through(&url, key, &["runs", "list"]).ok().contains(&run.run_id));

        // Keys through the server: an admin's key issues, lists and revokes them.
        let issued =
            through(&url, key, &["keys", "create", "--principal", "dave", "--scopes", "approvals:read", "--json"])
                .json();
        let dave = issued["token"].as_str().unwrap().to_owned();
        assert_eq!(through(&url, &dave, &["approvals", "list", "--json"]).code, 0, "the new key signs in");
        through(&url, &dave, &["keys", "list"]).fails(5);
        let keys = through(&url, key, &["keys", "list", "--json"]).json();
        assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
        let id = issued["id"].as_str().unwrap();
        assert!(through(&url, key, &["keys", "revoke", id, "--json"]).json()["revoked_at"].is_string());
        through(&url, &dave, &["approvals", "list"]).fails(7);
        through(&url, key, &["keys", "revoke", "no-such-key"]).fails(4);

        // What works on the database itself needs it.
        for args in [&["migrate"][..], &["serve"]] {
            let ran = through(&url, key, args);
            assert!(ran.fails(2).contains("--db"), "{args:?}: {ran:?}");
        }
        let stranger = through(&url, "kern_nobody_secret", &["approvals", "list"]);
        assert!(stranger.fails(7).contains("--api-key-file"), "{stranger:?}");
        let nowhere = through("http://127.0.0.1:1", key, &["approvals", "list"]);
        assert!(nowhere.fails(6).contains("cannot reach"), "{nowhere:?}");
        // The key may come on standard input, kept out of the process list and the shell's history.
        let mut piped = kern_command()
            .args(["--server", &url, "--api-key-file", "-", "approvals", "list", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kern");
        piped.stdin.take().expect("its standard input").write_all(format!("{key}\n").as_bytes()).unwrap();
        let listed = Ran::from(piped.wait_with_output().expect("wait for kern"));
        assert_eq!(listed.code, 0, "{listed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_cancelled_and_recovered_and_the_trail_exported_through_a_server() {
    each_scene(|Scene { db, store, agent }| async move {
        let (cancelled, cancelled_row) = seed::pause(&agent, "delete user 42", "user-1").await;
        let (stuck, stuck_row) = seed::pause(&agent, "delete user 43", "user-1").await;
        store.decide(&stuck_row, &Principal::new("alice"), Decision::approve()).await.unwrap();
        // A continue claimed the run an hour ago and never finished.
        let claimed = store.claim_run(&stuck.run_id).await.unwrap();
        let abandoned = RunRecord { updated_at: Utc::now() - TimeDelta::hours(1), ..claimed };
        store.save_runs(std::slice::from_ref(&abandoned), &[], &[]).await.unwrap();
        let admin = ApiKey::issue("carol", Vec::new(), vec![Scope::Admin]);
        let reader = ApiKey::issue("dave", Vec::new(), vec![Scope::ApprovalsRead]);
        store.save_api_key(&admin.key).await.unwrap();
        store.save_api_key(&reader.key).await.unwrap();
        let url = serve(&db);
        let (key, reader) = (admin.token.as_str(), reader.token.as_str());

        through(&url, reader, &["runs", "cancel", &cancelled.run_id]).fails(5);
        // Cancelling a run decides its rows: the key's principal has no `finance` role.
        let (paying, paying_row) = seed::pause(&agent, "pay acme", "user-1").await;
        assert!(through(&url, key, &["runs", "cancel", &paying.run_id]).fails(5).contains("finance"));
        assert_eq!(store.get_approval(&paying_row).await.unwrap().unwrap().status, ApprovalStatus::Pending);
        let run = through(&url, key, &["runs", "cancel", &cancelled.run_id, "--json"]).json();
        assert_eq!(run["status"], "cancelled");
        let row = store.get_approval(&cancelled_row).await.unwrap().unwrap();
        assert_eq!((row.status, row.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("carol")));
        assert!(through(&url, key, &["runs", "cancel", &cancelled.run_id]).fails(3).contains("not paused"));
        through(&url, key, &["runs", "cancel", "no-such-run"]).fails(4);

        // The server's stale time (10 minutes) is the least a recovery through it waits.
        let short = through(&url, key, &["runs", "recover", &stuck.run_id, "--stale-after", "1m"]);
        assert!(short.fails(1).contains("stale time"), "{short:?}");
        through(&url, key, &["runs", "recover", &stuck.run_id, "--stale-after", "2h"]).fails(3);
        let released = through(&url, key, &["runs", "recover", &stuck.run_id, "--stale-after", "10m", "--json"]).json();
        assert_eq!(released["status"], "paused");
        through(&url, key, &["runs", "recover", "no-such-run", "--stale-after", "10m"]).fails(4);
        let done = agent.continue_run(&stuck.run_id, stuck.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");

        // The export through the server is the export from the database, line for line.
        for format in ["jsonl", "csv"] {
            let served = through(&url, key, &["audit", "export", "--format", format]);
            let direct = db.kern(&["audit", "export", "--format", format]);
            assert_eq!(served.ok(), direct.ok(), "{format}");
        }
        let kinds: Vec<String> = through(&url, key, &["audit", "export"])
            .ok()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds.iter().filter(|kind| *kind == "executed").count(), 1, "{kinds:?}");
        assert_eq!(through(&url, key, &["audit", "export", "--since", "2999-01-01T00:00:00Z"]).ok(), "");
        // A checkpoint through the server is the checkpoint from the database, and holds there.
        let checkpoint = db.kern(&["audit", "checkpoint"]).ok().trim().to_owned();
        assert_eq!(through(&url, key, &["audit", "checkpoint"]).ok().trim(), checkpoint);
        let held = through(&url, key, &["audit", "verify", "--json", "--checkpoint", &checkpoint]).json();
        assert_eq!((held["ok"].as_bool(), held["checkpoint"].as_str()), (Some(true), Some(checkpoint.as_str())));
        through(&url, reader, &["audit", "export"]).fails(5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_the_servers_event_stream() {
    each_scene(|Scene { db, store, agent }| async move {
        let (_, id) = seed::pause(&agent, "delete user 42", "user-1").await;
        let admin = ApiKey::issue("carol", Vec::new(), vec![Scope::Admin]);
        store.save_api_key(&admin.key).await.unwrap();
        let url = serve(&db);

        let mut watch = Running::start([
            "--server",
            &url,
            "--api-key",
            &admin.token,
            "approvals",
            "watch",
            "--after",
            "0",
            "--json",
        ]);
        let created = watch.next_json();
        assert_eq!((created["kind"].as_str(), created["approval_id"].as_str()), (Some("created"), Some(id.as_str())));
        through(&url, &admin.token, &["approvals", "reject", &id, "--note", "no"]).ok();
        let rejected = watch.next_json();
        assert_eq!((rejected["kind"].as_str(), rejected["principal"].as_str()), (Some("rejected"), Some("carol")));
        assert_eq!(watch.interrupt(), Some(0));

        // A stream that ends is opened again; one the server then refuses (its key revoked) ends
        // the watch, saying why.
        let after = store.last_event_seq().await.unwrap().to_string();
        let args = ["--server", &url, "--api-key", &admin.token, "approvals", "watch", "--after", &after, "--json"];
        let mut watch = Running::start(args);
        let (_, later) = seed::pause(&agent, "delete user 43", "user-1").await;
        // Shown: the stream is open.
        assert_eq!(watch.next_json()["approval_id"].as_str(), Some(later.as_str()));
        store.revoke_api_key(&admin.key.id).await.unwrap();
        let (code, stderr) = tokio::task::spawn_blocking(move || watch.wait()).await.unwrap();
        assert_eq!(code, Some(7), "{stderr}");
        assert!(stderr.contains("the event stream broke off") && stderr.contains("API key"), "{stderr}");
    })
    .await;
}
