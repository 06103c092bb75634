//! The conformance suite: one `async fn` per scenario, each taking a
//! [`BackendFactory`](crate::BackendFactory). [`conformance_suite!`](crate::conformance_suite)
//! expands the whole list into one `#[tokio::test]` per scenario in a
//! backend's `tests/conformance.rs`.

pub mod claims;
pub mod completions;
pub mod executions;
pub mod leases;
pub mod reads;
pub mod retries;

mod support;

/// Expands the suite into one `#[tokio::test]` per scenario, for the backend
/// opened by `$factory` (an expression implementing `BackendFactory`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::__conformance_scenarios!(
            $factory;
            executions::submit_then_get,
            executions::submit_batch,
            executions::idempotent_submit_returns_first_id,
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
            retries::promote_scheduled_makes_due_ready,
            reads::get_unknown_is_not_found,
            reads::list_filters_and_paginates,
            reads::counts_per_lane_and_state,
            completions::completion_recorded_for_every_terminal_transition,
            completions::two_completion_streams_are_independent,
            completions::completion_payload_describes_transition,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_scenarios {
    ($factory:expr; $($module:ident :: $name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$module::$name(&$factory).await;
            }
        )+
    };
}
