//! The HTTP API (`kern-server`): every route against every store kern ships, through the
//! router (`ServiceExt::oneshot`), and a real server on 127.0.0.1 for what needs a socket:
//! live events, concurrent decisions, an open server's loopback rule; and the inbox's pages and
//! forms.
//!
//! Postgres: set `KERN_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//! Unset, the Postgres tests print why and pass; set but unreachable, they fail.

mod admin;
mod approvals;
mod harness;
mod inbox;
mod jwt;
mod live;
mod runs;

/// One test per case and backend.
macro_rules! suite {
    ($($module:ident::$case:ident),+ $(,)?) => {
        suite!(@backend memory, Memory, [$($module::$case),+]);
        suite!(@backend sqlite, Sqlite, [$($module::$case),+]);
        suite!(@backend postgres, Postgres, [$($module::$case),+]);
    };
    (@backend $name:ident, $backend:ident, [$($module:ident::$case:ident),+]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::Backend::$backend.run(crate::$module::$case).await;
                }
            )+
        }
    };
}

suite! {
    approvals::a_row_reads_in_the_reference_shape,
    approvals::a_missing_row_is_not_found,
    approvals::listing_pages_and_filters,
    approvals::bad_parameters_are_refused_with_what_is_wrong,
    approvals::credentials_and_scopes_are_checked,
    approvals::resolve_decides_once_as_the_caller,
    approvals::a_user_input_value_named_as_a_key_is_the_calls,
    approvals::a_policy_decides_through_votes,
    approvals::cancel_and_delete_withdraw_a_pending_row,
    approvals::if_match_and_idempotency_key_guard_a_resolve,
    approvals::isolation_hides_other_users_rows,
    admin::admins_issue_list_and_revoke_keys,
    admin::runs_are_listed_newest_first_by_filter_and_page,
    admin::runs_are_cancelled_and_released_by_who_may,
    admin::the_trail_is_read_in_pages_by_admins,
    admin::a_workers_counts_are_scraped_with_the_metrics,
    runs::a_run_pauses_and_continues_once_its_row_is_approved,
    runs::the_row_wins_over_the_callers_answers,
    runs::an_audit_call_runs_on_its_callers_answer_and_names_them_on_its_row,
    runs::a_scoped_caller_runs_only_in_their_own_sessions,
    runs::run_routes_refuse_what_they_cannot_run,
    runs::a_streamed_run_answers_its_events_in_order_and_numbered,
    runs::a_team_run_continues_over_http_only_once_its_members_row_is_approved,
    runs::a_team_members_run_names_its_team,
    live::an_event_arrives_after_a_resolve_and_resumes_without_loss,
    live::a_runs_status_changes_arrive_as_run_events,
    live::runs_one_write_stamped_alike_all_arrive,
    live::revoking_a_key_ends_its_event_streams,
    live::concurrent_resolves_of_one_row_give_one_winner,
    live::operations_routes_answer,
    live::a_request_past_the_time_limit_is_answered_504_and_its_run_goes_on,
    live::a_server_asked_to_stop_stores_the_runs_under_way_first,
    jwt::hs256_tokens_sign_callers_in_and_are_checked,
    jwt::rs256_tokens_are_checked_with_the_public_key,
    inbox::signing_in_opens_a_session_whose_forms_are_guarded,
    inbox::a_session_reads_the_api_but_never_writes_it,
    inbox::signing_out_ends_the_session_and_clears_its_cookie,
    inbox::behind_https_the_session_cookie_is_the_hosts_own,
    inbox::a_reader_looks_but_does_not_decide,
    inbox::assets_are_served_from_the_binary,
    inbox::a_run_left_running_is_recovered_from_its_page,
    inbox::a_cancelled_call_shows_in_the_history_and_its_exports,
    inbox::approving_from_the_list_returns_to_the_list,
    inbox::an_edit_changes_only_what_the_approver_changed,
    inbox::a_quorum_row_shows_how_far_it_has_come_and_who_voted,
    inbox::forms_through_a_proxy_are_accepted_from_the_public_origin,
}
