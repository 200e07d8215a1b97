//! The store suite: the same cases against every store kern ships.
//!
//! Each case is an async fn written once, taking the store as `Arc<dyn Store>`; [`suite!`]
//! turns it into one test per backend: `memory::case` (the reference `MemoryDb`),
//! `sqlite::case` (a fresh temporary file), `sqlite_memory::case` (`SqliteDb::in_memory`) and
//! `postgres::case` (a fresh schema, dropped afterwards). Cases about the database itself
//! (schema creation, upgrades, table names) run on the SQL backends only.
//!
//! Postgres: set `KERN_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//! Unset, the Postgres tests print why and pass; set but unreachable, they fail.

mod approvals;
mod feed;
mod fixtures;
mod harness;
mod hostile;
mod keys;
mod policy;
mod resolve;
mod runs;
mod schema;
mod trail;
mod wait;
mod workers;

/// One test per case and backend; `sql` cases get a [`harness::SqlTarget`] instead of a store.
macro_rules! suite {
    (
        stores: [$($module:ident::$case:ident),+ $(,)?],
        sql: [$($sql_module:ident::$sql_case:ident),+ $(,)?] $(,)?
    ) => {
        suite!(@backend memory, Memory, [$($module::$case),+], []);
        suite!(@backend sqlite_memory, SqliteMemory, [$($module::$case),+], []);
        suite!(@backend sqlite, Sqlite, [$($module::$case),+], [$($sql_module::$sql_case),+]);
        suite!(@backend postgres, Postgres, [$($module::$case),+], [$($sql_module::$sql_case),+]);
    };
    (@backend $name:ident, $backend:ident, [$($module:ident::$case:ident),+], [$($sql_module:ident::$sql_case:ident),*]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::Backend::$backend.run(crate::$module::$case).await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $sql_case() {
                    crate::harness::Backend::$backend.run_sql(crate::$sql_module::$sql_case).await;
                }
            )*
        }
    };
}

suite! {
    stores: [
        approvals::every_field_round_trips,
        approvals::large_payloads_round_trip,
        approvals::a_duplicate_id_is_refused,
        approvals::unknown_rows_read_as_none,
        approvals::every_filter_selects_its_rows,
        approvals::created_bounds_are_exclusive_before_and_inclusive_after,
        approvals::pages_are_stable_when_created_at_ties,
        approvals::sql_metacharacters_in_filters_are_inert,
        approvals::pending_rows_are_counted_per_user,
        approvals::the_pending_count_follows_every_way_a_row_leaves_pending,
        approvals::delete_cancels_a_pending_row_and_refuses_a_resolved_one,
        resolve::resolving_returns_the_stored_row,
        resolve::of_64_racing_resolvers_exactly_one_wins,
        resolve::a_second_resolution_is_refused,
        resolve::an_unknown_id_is_not_found,
        resolve::nothing_goes_back_to_pending,
        resolve::an_unexpected_status_is_a_conflict,
        resolve::expire_approvals_marks_and_counts_overdue_rows,
        resolve::a_row_past_its_expiry_cannot_be_resolved,
        resolve::invalid_user_input_is_refused_and_the_row_stays_pending,
        resolve::a_confirmation_is_approved_with_nothing_but_a_note,
        resolve::a_rejection_of_any_pause_type_carries_nothing_but_a_note,
        resolve::user_input_and_external_results_take_an_optional_note_and_nothing_else,
        runs::saved_runs_load_back,
        runs::save_runs_sets_the_run_status_of_the_runs_rows,
        runs::a_finished_run_reads_back_whole_everywhere_and_can_be_written_again,
        runs::a_failing_batch_writes_nothing,
        runs::a_batch_repeating_an_id_writes_nothing,
        runs::a_batch_larger_than_a_statement_is_saved_whole,
        runs::of_16_concurrent_claims_exactly_one_wins,
        runs::claiming_a_missing_or_unpaused_run_fails,
        runs::reclaiming_a_stale_run_returns_it_stamped_now,
        runs::a_held_claim_is_renewed_until_it_is_taken_over,
        runs::only_a_running_run_can_be_reclaimed,
        runs::a_recent_claim_is_not_stale,
        runs::of_16_concurrent_reclaims_exactly_one_wins,
        runs::session_runs_are_the_latest_top_level_runs_oldest_first,
        runs::releasing_a_stale_run_pauses_it_for_the_next_continue,
        runs::releasing_a_team_run_releases_the_members_its_continue_held,
        runs::of_16_concurrent_releases_exactly_one_wins,
        runs::list_runs_filters_and_pages_newest_first,
        wait::a_resolved_row_comes_back_at_once,
        wait::a_missing_row_is_not_found,
        wait::a_timeout_returns_the_row_still_pending,
        wait::a_resolution_by_another_task_wakes_every_waiter,
        wait::a_row_that_expires_while_waited_on_comes_back_expired,
        wait::a_runs_claim_take_over_and_release_wake_the_followers,
        wait::a_row_cancelled_while_waited_on_comes_back_cancelled,
        runs::a_batch_given_up_midway_writes_all_or_nothing,
        policy::a_row_with_a_policy_is_decided_only_by_eligible_principals,
        policy::a_quorum_of_distinct_approvers_approves,
        policy::a_principal_hands_over_values_and_results,
        policy::a_row_whose_policy_its_call_cannot_honour_is_refused,
        policy::one_eligible_rejection_rejects,
        policy::the_runs_user_may_not_decide_where_the_policy_forbids_it,
        policy::of_64_concurrent_voters_exactly_the_quorum_is_counted,
        policy::edits_need_allow_edit_and_must_fit_the_schema,
        policy::an_eligible_principal_cancels_a_pending_row,
        policy::a_quorum_counts_approvals_of_the_same_arguments,
        policy::every_resolution_names_who_made_it,
        policy::cancelling_a_run_cancels_the_rows_it_waits_on,
        policy::a_run_is_cancelled_as_a_principal_only_if_every_row_it_withdraws_allows_it,
        policy::rows_past_their_expiry_are_neither_listed_nor_counted_as_pending,
        policy::the_sweep_cancels_the_run_of_a_row_that_says_so,
        trail::every_change_is_on_the_trail_in_order_and_verifies,
        trail::an_audit_row_opens_its_trail_with_its_decision,
        trail::an_execution_of_an_unknown_row_writes_nothing,
        trail::an_execution_is_recorded_on_its_rows_run_and_its_keys_are_checked,
        hostile::json_deeper_than_the_limit_is_refused_before_anything_is_written,
        hostile::json_at_the_limit_round_trips,
        hostile::a_decision_that_could_not_be_stored_is_refused_and_changes_nothing,
        hostile::text_with_nul_inside_json_round_trips,
        hostile::keys_beyond_the_limits_are_refused_before_anything_is_written,
        hostile::keys_at_the_limit_round_trip,
        hostile::a_lookup_by_an_id_no_row_can_have_finds_nothing,
        hostile::an_abandoned_resolution_leaves_each_row_whole_and_the_store_usable,
        keys::keys_are_saved_read_and_listed_oldest_first,
        keys::a_revoked_key_keeps_its_first_revocation,
        keys::a_key_that_could_not_be_looked_up_is_refused_and_nothing_is_stored,
        keys::a_taken_key_id_is_refused,
        feed::events_after_gives_every_event_in_seq_order,
        feed::following_events_after_the_last_seq_sees_each_once,
        feed::tool_name_and_expiry_filters_select_their_rows,
        feed::cursor_pages_visit_every_row_once_in_order,
        feed::a_cursor_after_the_last_row_gives_an_empty_page_and_the_total,
        feed::rows_of_the_same_time_follow_a_cursor_by_id,
        feed::the_rows_that_expire_are_listed_soonest_first_and_paged,
        workers::decided_runs_are_paused_top_level_runs_with_every_row_decided,
        workers::stale_runs_are_top_level_runs_running_since_the_cutoff,
        workers::stale_runs_page_on_from_the_last_run_read,
        workers::a_follower_of_the_trail_wakes_when_it_grows,
        workers::runs_changed_after_follow_writes_in_time_order,
        workers::runs_changed_alike_are_paged_through_by_their_ids,
    ],
    sql: [
        schema::an_empty_database_gets_the_current_schema,
        schema::concurrent_first_opens_all_succeed,
        schema::reopening_keeps_the_rows,
        schema::an_older_schema_is_upgraded_keeping_its_rows_and_starting_their_trails,
        schema::each_write_is_one_commit_and_reads_none,
        schema::a_newer_schema_is_refused,
        schema::stores_with_different_table_names_do_not_share_rows,
        schema::a_bad_table_name_is_refused,
        schema::a_store_that_may_not_create_tables_opens_only_tables_that_exist,
        wait::a_handles_own_writes_wake_its_waiters_and_followers,
        wait::a_resolution_through_another_handle_wakes_the_waiter,
        workers::a_decision_through_another_handle_wakes_a_follower,
        trail::the_database_refuses_to_rewrite_the_trail,
        trail::verifying_names_an_edited_row,
        trail::verifying_names_a_deleted_event,
        trail::verifying_names_an_altered_event,
        trail::verifying_names_a_vote_no_event_records,
        hostile::an_unreadable_row_is_named_and_the_listing_goes_on,
        hostile::an_unreadable_run_holds_up_no_listing_of_runs,
        hostile::a_time_kern_cannot_read_makes_a_row_unreadable_not_a_panic,
        hostile::an_unreadable_row_holds_up_neither_the_expiry_sweep_nor_the_trail_check,
        hostile::checking_the_trail_waits_for_no_writer,
        hostile::a_decision_that_waited_past_the_expiry_is_refused,
        hostile::a_row_decided_while_the_sweep_waits_does_not_cancel_its_run,
        hostile::a_resolution_the_database_cannot_take_is_a_database_error,
        hostile::an_upgrade_from_every_version_keeps_the_rows_and_takes_nul_inside_json,
    ],
}
