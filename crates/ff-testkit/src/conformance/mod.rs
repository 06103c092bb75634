//! The conformance suite: one `async fn` per scenario, each taking a
//! [`BackendFactory`](crate::BackendFactory). [`conformance_suite!`](crate::conformance_suite)
//! expands the whole list into one `#[tokio::test]` per scenario in a
//! backend's `tests/conformance.rs`.

pub mod claims;
pub mod completions;
pub mod executions;
pub mod explain;
pub mod flow_cancel;
pub mod flow_control;
pub mod flows;
pub mod joins;
pub mod leases;
pub mod pipeline;
pub mod reads;
pub mod retries;
pub mod signals;

mod flow_support;
mod support;

/// Expands the suite into one `#[tokio::test]` per scenario, for the backend
/// opened by `$factory` (an expression implementing `BackendFactory`).
/// With `requires = "VAR"`, each test first reads the server URL from the
/// environment variable `VAR` and is skipped, loudly, when it is unset
/// (a failure under `FF_TEST_REQUIRE_ALL_BACKENDS=1`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::__conformance_list!($factory; true);
    };
    ($factory:expr, requires = $var:literal) => {
        $crate::__conformance_list!($factory; $crate::harness::server_url($var).is_some());
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_list {
    ($factory:expr; $run:expr) => {
        $crate::__conformance_scenarios!(
            $factory; $run;
            executions::submit_then_get,
            executions::submit_batch,
            executions::idempotent_submit_returns_first_id,
            executions::idempotent_repeat_says_when_its_spec_differs,
            executions::idempotent_batch_duplicates_resolve_to_first,
            executions::cancel_ready,
            executions::cancel_running_then_complete_gets_not_active,
            executions::cancel_terminal_is_noop_with_outcome,
            executions::requeue_failed_solo,
            executions::invalid_inputs_rejected_and_nothing_stored,
            executions::limits_enforced,
            claims::priority_then_fifo_order,
            claims::claim_respects_capabilities,
            claims::capability_mismatch_does_not_block_lane,
            claims::many_unclaimable_do_not_hide_work,
            claims::claim_up_to_n,
            claims::claim_spans_lanes_in_order,
            claims::claim_waits_then_wakes_on_submit,
            claims::claim_wait_times_out_empty,
            claims::run_at_delays_claim,
            claims::namespaces_are_isolated,
            leases::renew_extends_lease,
            leases::release_returns_to_ready_without_attempt,
            leases::complete_records_result,
            leases::complete_replay_returns_same_response,
            leases::stale_handle_gets_lease_lost,
            leases::guessed_lease_token_changes_nothing,
            leases::handle_of_another_namespace_is_not_found,
            leases::old_attempt_complete_after_retry_gets_lease_lost,
            leases::operation_after_lease_until_expires_itself,
            leases::lease_expiry_retries,
            leases::attempt_timeout_retries,
            retries::retry_goes_to_back_of_lane,
            retries::fail_retryable_schedules_backoff,
            retries::backoff_grows_with_cap_and_jitter,
            retries::fail_permanent_is_terminal,
            retries::retries_exhausted_is_failed,
            retries::deadline_fails_waiting_execution,
            retries::deadline_fails_running_execution,
            retries::retry_past_deadline_fails_at_once,
            retries::retry_past_deadline_records_the_deadline,
            retries::promote_scheduled_makes_due_ready,
            reads::get_unknown_is_not_found,
            reads::list_filters_and_paginates,
            reads::list_pages_through_everything_once,
            reads::counts_per_lane_and_state,
            reads::describe_names_the_backend,
            completions::completion_recorded_for_every_terminal_transition,
            completions::two_completion_streams_are_independent,
            completions::completion_payload_describes_transition,
            flows::flow_linear_chain,
            flows::flow_diamond,
            flows::flow_fan_out_fan_in_100,
            flows::flow_cycle_rejected_nothing_stored,
            flows::flow_create_idempotent,
            flows::inputs_carry_parent_outcomes,
            flows::flow_outcome_completed_failed_cancelled,
            flows::requeue_flow_member_conflict,
            flows::flow_with_1000_nodes,
            joins::all_of_dead_edge_skips_child,
            joins::any_of_first_success_promotes,
            joins::any_of_all_dead_skips,
            joins::any_of_cancels_losers,
            joins::loser_kept_when_other_node_needs_it,
            joins::quorum_two_of_three,
            joins::quorum_skips_when_impossible_early,
            joins::quorum_n_above_incoming_rejected,
            joins::on_failure_edge_runs_on_failure,
            joins::on_failure_edge_dead_on_success,
            joins::always_edge_runs_after_cancel,
            joins::skip_cascades_three_levels,
            flow_cancel::fail_fast_cancels_rest_spares_compensation,
            flow_cancel::cancel_flow_cancels_running_member,
            flow_cancel::cancel_flow_never_promotes_after,
            flow_cancel::cancel_flow_on_terminal_is_noop,
            flow_cancel::dynamic_fan_out_adds_children,
            flow_cancel::dynamic_fan_out_replay_is_idempotent,
            flow_cancel::dynamic_fan_out_on_cancelled_flow_not_active,
            pipeline::duplicate_completion_is_noop,
            pipeline::concurrent_cascades_into_one_fan_in,
            pipeline::batched_cascades_apply_each_alone,
            pipeline::completions_for_solo_executions,
            pipeline::reconciler_promotes_stuck_blocked_node,
            pipeline::outbox_trim_deletes_only_dispatched,
            explain::why_names_each_holding_reason,
            flow_control::concurrency_limit_holds_under_parallel_claims,
            flow_control::slot_released_on_complete_fail_cancel_expiry_suspend,
            flow_control::limited_execution_does_not_block_lane,
            flow_control::freed_slot_wakes_waiting_claim,
            flow_control::prefix_pattern_limits_each_key,
            flow_control::flow_node_keys_are_its_own,
            flow_control::concurrency_limit_under_many_workers,
            flow_control::rate_limit_window,
            flow_control::rate_burst,
            flow_control::rate_keys_have_own_buckets,
            flow_control::budget_hard_breach_stops_claims,
            flow_control::budget_soft_breach_recorded,
            flow_control::budget_report_idempotent,
            flow_control::budget_hard_breach_cancels_pending_flow_members,
            flow_control::budget_resets_each_interval,
            flow_control::stale_handle_cannot_report_usage,
            flow_control::fair_share_weights,
            flow_control::priority_within_fairness_key,
            flow_control::late_fairness_key_gets_its_share,
            flow_control::lane_without_fair_share_keeps_claim_order,
            flow_control::fairness_under_backlog,
            flow_control::policy_change_applies_to_next_claim,
            flow_control::policy_crud_versions,
            flow_control::invalid_policy_rejected_nothing_stored,
            flow_control::flow_control_keys_are_validated,
            flow_control::policies_are_namespaced,
            signals::suspend_releases_lease_and_keeps_attempt,
            signals::signal_resumes_any,
            signals::all_needs_every_waitpoint,
            signals::count_n_distinct,
            signals::signal_before_suspend_is_buffered,
            signals::already_satisfied_keeps_lease,
            signals::suspend_replay_returns_first_answer,
            signals::duplicate_signal_idempotency_key,
            signals::concurrent_signals_resume_once,
            signals::timeout_fail,
            signals::timeout_cancel,
            signals::timeout_resume_with_timeout_signal,
            signals::cancel_suspended,
            signals::deadline_fails_suspended,
            signals::cancel_flow_with_suspended_member,
            signals::suspended_member_blocks_children_until_resumed,
            signals::resumed_attempt_receives_signals,
            signals::forged_token_rejected_nothing_stored,
            signals::expired_token_rejected,
            signals::rotated_kid_still_verifies_in_grace,
            signals::token_for_other_waitpoint_rejected,
            signals::signal_to_terminal_is_not_active,
            signals::signals_cap_enforced,
            signals::stale_handle_cannot_suspend,
            signals::resume_wakes_waiting_claim,
            signals::token_is_the_same_on_every_backend,
            signals::operator_signal_is_namespaced,
            signals::invalid_suspend_rejected_nothing_stored,
            signals::adopting_a_secret_is_idempotent,
            signals::pending_waitpoint_carries_over_to_a_retry,
            signals::refused_suspend_leaves_nothing,
            signals::retry_after_resume_sees_earlier_signals,
            signals::due_timeout_wins_over_late_signal,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_scenarios {
    ($factory:expr; $run:expr; $($module:ident :: $name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if $run {
                    let factory = $crate::harness::ForScenario {
                        factory: &$factory,
                        scenario: stringify!($name),
                    };
                    $crate::conformance::$module::$name(&factory).await;
                }
            }
        )+
    };
}
