//! [`Instrumented`]: the one place backend calls are traced. Every call
//! through it runs in an `ff.backend` span naming the operation, the
//! backend and the execution or flow the call names, and an error is
//! logged with its kind, so no backend carries
//! instrumentation of its own and the metrics to come have one place to
//! grow.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use tracing::Instrument;

use ff_core::ops::{BackendWrapper, Call};
use ff_core::{EngineBackend, EngineError};

/// A backend whose every call is traced.
pub struct Instrumented {
    inner: Arc<dyn EngineBackend>,
    /// `sqlite`, `postgres`, `valkey`... as the spans name it.
    backend: &'static str,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn EngineBackend>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    /// `inner` traced, ready to share.
    pub fn wrap(inner: Arc<dyn EngineBackend>, backend: &'static str) -> Arc<dyn EngineBackend> {
        Arc::new(Self::new(inner, backend))
    }
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("inner", &self.inner)
            .field("backend", &self.backend)
            .finish()
    }
}

impl BackendWrapper for Instrumented {
    fn target(&self, _call: Call) -> Result<&dyn EngineBackend, EngineError> {
        Ok(&*self.inner)
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call,
        run: BoxFuture<'a, Result<T, EngineError>>,
    ) -> BoxFuture<'a, Result<T, EngineError>> {
        let span = tracing::debug_span!(
            "ff.backend",
            op = call.op,
            backend = self.backend,
            writes = call.writes,
            execution = tracing::field::Empty,
            flow = tracing::field::Empty,
        );
        if let Some(id) = call.execution {
            span.record("execution", tracing::field::display(id));
        }
        if let Some(id) = call.flow {
            span.record("flow", tracing::field::display(id));
        }
        run.map(move |answer| {
            if let Err(err) = &answer {
                tracing::debug!(op = call.op, kind = ?err.kind(), error = %err, "backend call failed");
            }
            answer
        })
        .instrument(span)
        .boxed()
    }
}

ff_core::wrap_backend!(Instrumented);

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::ExecutionId;

    #[tokio::test]
    async fn calls_reach_the_backend_and_errors_pass_through() {
        let backend = ff_testkit::reference::ReferenceBackend::new(Arc::new(ff_core::SystemClock));
        let traced = Instrumented::wrap(Arc::new(backend), "reference");
        let err = traced
            .get_execution(ExecutionId::new())
            .await
            .expect_err("an unknown id is not found");
        assert_eq!(err.kind(), ff_core::ErrorKind::NotFound);
    }
}
