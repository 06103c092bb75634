//! Suspension and signals: a running execution waits on named waitpoints
//! until signals satisfy its resume condition or its timeout passes.
//!
//! - [`condition`]: when the signals delivered are enough.
//! - [`model`]: what is stored (waitpoints, signals, suspensions) and the
//!   requests and answers.
//! - [`rules`]: create a waitpoint, suspend, deliver, time out — pure,
//!   applied inside a backend's atomic step.
//! - [`token`]: the signed waitpoint tokens and the keyring.

pub mod condition;
pub mod model;
pub mod rules;
pub mod token;

pub use condition::ResumeCondition;
pub use model::{
    Signal, SignalRequest, SignalResponse, SignalsView, SuspendRequest, SuspendResponse,
    Suspension, SuspensionEnd, TimeoutPolicy, WaitState, Waitpoint, WaitpointGrant,
    WaitpointRequest, WaitpointState, DEFAULT_WAITPOINT_TTL_MS, TIMEOUT_SIGNAL, TIMEOUT_SOURCE,
};
pub use rules::{SuspendDecision, SUSPENSION_TIMEOUT};
pub use token::{Keyring, KeyringCache, TokenClaims, WaitpointKey, WaitpointSecret};
