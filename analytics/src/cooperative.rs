//! Plans that stop when asked: every operator that can produce many
//! batches from one input batch yields to the scheduler as it goes.
//!
//! A statement is cancelled by dropping its stream, which aborts the tasks
//! running its partitions; an aborted task stops at its next yield.
//! DataFusion makes the leaves of a plan yield (its `EnsureCooperative`
//! rule), but a join emits batch after batch for a single batch of its
//! probe side without polling a leaf: a cross join of two 19,000-row
//! tables ran on for minutes after Ctrl-C, on every core, and the next
//! statement waited for it. [`YieldInJoins`] wraps the output of every
//! join and unnest in a `CooperativeExec`, so each batch they emit spends
//! the task's scheduling budget and the task yields (and, once aborted,
//! ends) within milliseconds.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;

/// The physical optimizer rule; it runs after DataFusion's own.
#[derive(Debug, Default)]
pub struct YieldInJoins;

/// Whether `plan` can emit many batches per batch it reads.
fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || name == "UnnestExec"
}

impl PhysicalOptimizerRule for YieldInJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if multiplies_rows(node.as_ref()) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldInJoins"
    }

    fn schema_check(&self) -> bool {
        // the wrapper passes its child's batches through unchanged
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn joins_and_unnests_yield_and_nothing_else_is_wrapped() {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldInJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let sql = "SELECT sum(a.value * b.value) AS s FROM range(10) a CROSS JOIN range(10) b";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let join = lines
            .iter()
            .position(|l| l.starts_with("CrossJoinExec"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(lines[join - 1].starts_with("CooperativeExec"), "{text}");
        // besides the join, only leaves are wrapped (DataFusion's own rule)
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("CooperativeExec") {
                let child = lines[i + 1];
                assert!(
                    child.starts_with("CrossJoinExec") || child.contains("MemoryExec"),
                    "{text}"
                );
            }
        }
        // and the plan still answers
        let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let s = datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert!(s.contains("| 2025 |"), "{s}");
    }
}
