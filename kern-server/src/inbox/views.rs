//! The inbox's pages as askama templates (`kern-server/templates/`, checked by the compiler)
//! and the plain values they show: every value is formatted here, so that the templates only
//! lay out text (which askama escapes).

use askama::Template;

/// What every signed-in page shows around its content.
pub struct Chrome {
    /// Who is signed in.
    pub principal: String,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// Whether a sign-out button makes sense (not on a server without authentication).
    pub signed_in: bool,
    /// The navigation entry of the page: `inbox`, `history` or `run`.
    pub section: &'static str,
    pub css: &'static str,
    pub js: &'static str,
}

/// A pending row in the inbox's list.
pub struct RowView {
    pub id: String,
    pub tool: String,
    /// The arguments as one short line.
    pub args: String,
    pub user: String,
    /// `agent`, or `team › member`.
    pub source: String,
    pub pause: String,
    /// How long ago it was asked, e.g. `4m ago`.
    pub age: String,
    pub created_at: String,
    pub expires_at: Option<Deadline>,
    /// Whether the row can be approved from the list (a plain confirmation).
    pub quick: bool,
    /// The row's ETag when listed: an approval from the list is of the row as it was shown.
    pub etag: String,
}

/// A filter's option.
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

/// The inbox's filters as given.
#[derive(Default)]
pub struct Filters {
    pub tool: String,
    pub agent: String,
    pub team: String,
    pub user: String,
    pub pause: String,
    pub age: String,
    pub expiring: String,
    pub order: String,
}

/// `/`: the pending rows.
#[derive(Template)]
#[template(path = "inbox.html")]
pub struct InboxPage {
    pub chrome: Chrome,
    pub filters: Filters,
    pub pauses: &'static [Choice],
    pub ages: &'static [Choice],
    pub expirings: &'static [Choice],
    pub orders: &'static [Choice],
    pub rows: Vec<RowView>,
    pub total: u64,
    pub csrf: String,
    /// The URL of the next page, if there is one.
    pub next: Option<String>,
    /// The URL of the first page, when this is a later one.
    pub first: Option<String>,
    /// The query string the live refresh asks `/ui/rows` with, and where a quick approval
    /// returns to.
    pub query: String,
    /// The trail's last event before the rows were read: the live updates start after it, so
    /// that none made meanwhile is missed.
    pub after: i64,
}

/// `/ui/rows`: the list alone, which the page's script swaps in when rows come and go.
#[derive(Template)]
#[template(path = "rows.html")]
pub struct RowsFragment {
    pub rows: Vec<RowView>,
    pub total: u64,
    pub csrf: String,
    /// The list's query string, where a quick approval returns to.
    pub query: String,
}

/// When a pending row expires: as the pages show times, and in RFC 3339 for the countdown the
/// script draws over it (the time shown stays as its title).
pub struct Deadline {
    pub shown: String,
    pub rfc3339: String,
}

/// One argument of a call.
pub struct ArgView {
    pub name: String,
    pub value: String,
    /// The schema's type, e.g. `integer`.
    pub kind: String,
    pub description: String,
}

/// One turn of the conversation.
pub struct TurnView {
    /// `user`, `assistant` or `tool`: how the turn is styled.
    pub kind: String,
    /// Who spoke, e.g. `tool refund_order`.
    pub role: String,
    pub text: String,
}

/// A form field generated from a JSON Schema.
pub struct FieldView {
    /// The form name, e.g. `input.amount`.
    pub name: String,
    pub label: String,
    /// `text`, `multiline` (text with line breaks), `number`, `checkbox`, `select` or `json`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<String>,
    pub description: String,
    pub required: bool,
}

/// A vote cast on a row.
pub struct VoteView {
    pub who: String,
    pub kind: String,
    pub note: String,
    pub at: String,
}

/// The rules a row is decided under.
pub struct PolicyView {
    pub approvers: String,
    pub quorum: u32,
    pub self_approval: bool,
    pub allow_edit: bool,
    pub on_expire: String,
}

/// An argument an approver changed.
pub struct DiffView {
    pub name: String,
    pub before: String,
    pub after: String,
}

/// How a row was decided.
pub struct ResolutionView {
    pub status: String,
    pub by: String,
    pub at: String,
    pub note: String,
    pub data: String,
    pub diff: Vec<DiffView>,
}

/// One event of a row's trail.
pub struct TrailView {
    pub seq: i64,
    pub kind: String,
    pub principal: String,
    pub at: String,
}

/// `/ui/approvals/{id}`: one row, and the forms that decide it.
#[derive(Template)]
#[template(path = "detail.html")]
pub struct DetailPage {
    pub chrome: Chrome,
    pub id: String,
    /// The row's ETag as shown: a decision made on an older view is refused.
    pub etag: String,
    pub status: String,
    pub tool: String,
    pub description: String,
    pub args: Vec<ArgView>,
    pub user: String,
    pub path: String,
    pub pause: String,
    pub created_at: String,
    pub expires_at: Option<Deadline>,
    pub run_id: String,
    pub run_status: String,
    pub turns: Vec<TurnView>,
    pub policy: Option<PolicyView>,
    pub votes: Vec<VoteView>,
    pub pending: bool,
    /// Fields of the user-input form.
    pub inputs: Vec<FieldView>,
    /// Fields of the edit-then-approve form, when the policy allows edits.
    pub edits: Vec<FieldView>,
    pub external: bool,
    pub resolution: Option<ResolutionView>,
    pub trail: Vec<TrailView>,
    /// `verified`, or what is broken.
    pub trail_status: String,
    pub trail_intact: bool,
    /// Why the last decision was refused.
    pub error: Option<String>,
    /// What the refused form held, so that nothing needs typing twice.
    pub kept: KeptText,
    /// How far a pending row's quorum has come, when it needs more than one approval.
    pub progress: Option<String>,
    /// The viewer's vote on this pending row, when they have cast one: a second is refused.
    pub viewer_vote: Option<String>,
    /// The trail's last event before the row was read (see [`InboxPage::after`]).
    pub after: i64,
}

/// The free text of a refused form, shown again in its field.
#[derive(Default)]
pub struct KeptText {
    pub approve_note: String,
    pub reject_note: String,
    pub result: String,
}

/// A decided row in the history.
pub struct HistoryRow {
    pub id: String,
    pub tool: String,
    pub user: String,
    pub status: String,
    pub by: String,
    pub at: String,
    pub note: String,
    pub run_id: String,
}

/// `/ui/history`: decided rows.
#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    pub chrome: Chrome,
    pub status: String,
    pub statuses: &'static [Choice],
    pub tool: String,
    pub user: String,
    pub rows: Vec<HistoryRow>,
    pub total: u64,
    pub next: Option<String>,
    pub first: Option<String>,
    /// The query string the export links carry.
    pub query: String,
}

/// A row of a run.
pub struct RunRowView {
    pub id: String,
    pub tool: String,
    pub status: String,
}

/// `/ui/runs/{run_id}`: a run, live.
#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    pub chrome: Chrome,
    pub run_id: String,
    pub status: String,
    pub runner: String,
    pub user: String,
    pub input: String,
    pub content: String,
    pub updated_at: String,
    pub turns: Vec<TurnView>,
    pub rows: Vec<RunRowView>,
    pub parent: Option<String>,
    pub can_continue: bool,
    pub can_recover: bool,
    /// Why neither button is offered, when the run waits.
    pub waiting: Option<String>,
    pub error: Option<String>,
}

/// `/ui/sign-in`.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage<'a> {
    pub css: &'static str,
    pub error: Option<String>,
    /// The form's CSRF token, also set in its cookie ([`SIGN_IN_COOKIE`](crate::session::SIGN_IN_COOKIE)).
    pub csrf: &'a str,
}

/// A page that says what went wrong.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub css: &'static str,
    pub title: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrome() -> Chrome {
        Chrome {
            principal: "root".into(),
            csrf: "token123".into(),
            signed_in: true,
            section: "inbox",
            css: "/ui/assets/inbox.css?v=1",
            js: "/ui/assets/inbox.js?v=1",
        }
    }

    fn row(tool: &str) -> RowView {
        RowView {
            id: "r1".into(),
            tool: tool.into(),
            args: r#"{"to":"<b>"}"#.into(),
            user: "alice".into(),
            source: "support".into(),
            pause: "confirmation".into(),
            age: "just now".into(),
            created_at: "2026-01-01 00:00:00Z".into(),
            expires_at: Some(Deadline {
                shown: "2026-01-01 01:00:00Z".into(),
                rfc3339: "2026-01-01T01:00:00+00:00".into(),
            }),
            quick: true,
            etag: "\"r1-1\"".into(),
        }
    }

    #[test]
    fn the_inbox_renders_its_rows_escaped_with_the_csrf_token_in_every_form() {
        let page = InboxPage {
            chrome: chrome(),
            filters: Filters { tool: "a\"b".into(), ..Filters::default() },
            pauses: &[Choice { value: "", label: "any pause" }],
            ages: &[],
            expirings: &[],
            orders: &[],
            rows: vec![row("<script>alert(1)</script>")],
            total: 1,
            csrf: "token123".into(),
            next: Some("/?cursor=c".into()),
            first: None,
            query: String::new(),
            after: 7,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "text is escaped");
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(!html.contains("value=\"a\"b\"") && html.contains("value=\"a&#34;b\""), "attributes are escaped");
        assert_eq!(
            html.matches("<form method=\"post\"").count(),
            html.matches("name=\"csrf\" value=\"token123\"").count()
        );
        assert!(html.contains("data-expires=\"2026-01-01T01:00:00+00:00\""));
        assert!(html.contains("name=\"etag\" value=\"&#34;r1-1&#34;\""), "a quick approval names the row as listed");
        assert!(html.contains("rel=\"next\""));
        assert!(html.contains("data-after=\"7\""), "the live updates start where the rows were read");
        assert_eq!(html.matches("<script").count(), 1, "the only script is the inbox's own file");
        assert!(html.contains("<script src=\"/ui/assets/inbox.js?v=1\" defer></script>"));
    }

    #[test]
    fn a_pending_row_renders_the_forms_its_pause_needs() {
        let field = |name: &str, kind| FieldView {
            name: name.into(),
            label: name.into(),
            kind,
            value: String::new(),
            options: Vec::new(),
            description: "How many".into(),
            required: true,
        };
        let page = DetailPage {
            chrome: chrome(),
            id: "r1".into(),
            etag: "\"e1\"".into(),
            status: "pending".into(),
            tool: "extend_trial".into(),
            description: "Extend a trial.".into(),
            args: vec![ArgView {
                name: "customer".into(),
                value: "\"erin\"".into(),
                kind: "string".into(),
                description: String::new(),
            }],
            user: "erin".into(),
            path: "agent support".into(),
            pause: "user_input".into(),
            created_at: "2026-01-01 00:00:00Z".into(),
            expires_at: None,
            run_id: "run1".into(),
            run_status: "paused".into(),
            turns: vec![TurnView { kind: "user".into(), role: "user".into(), text: "extend my trial".into() }],
            policy: None,
            votes: Vec::new(),
            pending: true,
            inputs: vec![field("input.days", "number")],
            edits: vec![
                field("arg.customer", "text"),
                FieldView {
                    options: vec!["gold".into(), "silver".into()],
                    required: false,
                    ..field("arg.tier", "select")
                },
            ],
            external: false,
            resolution: None,
            trail: Vec::new(),
            trail_status: "verified".into(),
            trail_intact: true,
            error: Some("`days` must be an integer".into()),
            kept: KeptText { reject_note: "not <yet>".into(), ..KeptText::default() },
            progress: None,
            viewer_vote: None,
            after: 3,
        };
        let html = page.render().unwrap();
        for needle in [
            "name=\"input.days\"",
            "inputmode=\"decimal\"",
            "id=\"edit-form\"",
            "name=\"arg.customer\"",
            "id=\"reject-note\"",
            "value=\"cancel\"",
            "role=\"alert\"",
            "Extend a trial.",
            "data-after=\"3\"",
            // An optional choice the model left out stays out unless the approver picks one.
            "<option value=\"\" selected>(not set)</option>",
            "<option value=\"gold\">gold</option>",
            // What a refused form held is shown again, escaped.
            ">\nnot &#60;yet&#62;</textarea>",
        ] {
            assert!(html.contains(needle), "the page has {needle}");
        }
        assert_eq!(
            html.matches("<form method=\"post\"").count(),
            html.matches("name=\"csrf\" value=\"token123\"").count()
        );

        // Once the viewer has voted, only a cancel is left to them: a second vote is refused.
        let voted = DetailPage { viewer_vote: Some("You voted for this call".into()), ..page };
        let html = voted.render().unwrap();
        assert!(html.contains("You voted for this call"));
        for gone in ["id=\"approve-form\"", "id=\"edit-form\"", "value=\"reject\""] {
            assert!(!html.contains(gone), "the page has no {gone}");
        }
        assert!(html.contains("value=\"cancel\""));
    }

    #[test]
    fn the_sign_in_and_error_pages_render() {
        let error = Some("That API key signs nobody in".into());
        let sign_in = SignInPage { css: "/c.css", error, csrf: "t0k3n" }.render().unwrap();
        assert!(sign_in.contains("type=\"password\"") && sign_in.contains("signs nobody in"));
        assert!(sign_in.contains("name=\"csrf\" value=\"t0k3n\""));
        let error = ErrorPage { css: "/c.css", title: "Forbidden".into(), message: "no <b>".into() }.render().unwrap();
        assert!(error.contains("no &#60;b&#62;"));
    }
}
