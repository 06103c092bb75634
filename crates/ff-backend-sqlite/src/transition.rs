//! The single-execution transition: load one execution, let an `ff_core`
//! rule change it and persist what changed, as one write command.

use ff_core::{EngineError, Execution, ExecutionId, Millis};

use crate::SqliteBackend;

/// Runs `rule` on execution `id` inside a write command; the writer runs a
/// command once, so the rule runs once.
pub(crate) async fn transition<T, F>(
    backend: &SqliteBackend,
    id: ExecutionId,
    mut rule: F,
) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnMut(&mut Execution, Millis) -> T + Send + 'static,
{
    backend
        .inner
        .writer
        .write(move |ctx| {
            let (mut exec, before) = ctx.load(id)?;
            let answer = rule(&mut exec, ctx.now);
            ctx.save(exec, before)?;
            Ok(answer)
        })
        .await
}
