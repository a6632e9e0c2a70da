//! Negative zero equals zero in comparisons, as in PostgreSQL.
//!
//! Arrow's comparison kernels order floating point totally, so for
//! DataFusion 53.1 `-0.0 < 0.0` is true: on the quickstart lake
//! `temperature_c < 0` counts 263 hours whose rounded temperature is
//! -0.0 (PostgreSQL, DuckDB and IEEE 754 say -0 = 0; NaN equals NaN and
//! sorts above every number in all of them, as in Arrow). [`ZeroIsZero`],
//! an analyzer rule that runs after type coercion, adds `0.0` to each
//! floating-point side of a comparison (`=`, `<>`, `<`, `<=`, `>`, `>=`,
//! `BETWEEN`, `IN`): `-0.0 + 0.0` is `+0.0`, every other value (NaN too)
//! is unchanged. Values are stored and printed as they are (PostgreSQL
//! keeps `-0` too). Grouping still tells -0.0 and 0.0 apart.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct ZeroIsZero;

impl AnalyzerRule for ZeroIsZero {
    fn name(&self) -> &str {
        "floe_zero_is_zero"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = super::input_schema(&plan)?;
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| rewrite(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let float = |e: &Expr| e.get_type(schema).is_ok_and(|t| t.is_floating());
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if super::is_comparison(op) && (float(&left) || float(&right)) =>
        {
            let left = Box::new(plus_zero(*left, schema));
            let right = Box::new(plus_zero(*right, schema));
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, op, right)))
        }
        Expr::Between(b) if float(&b.expr) => Transformed::yes(Expr::Between(Between::new(
            Box::new(plus_zero(*b.expr, schema)),
            b.negated,
            Box::new(plus_zero(*b.low, schema)),
            Box::new(plus_zero(*b.high, schema)),
        ))),
        Expr::InList(mut list) if float(&list.expr) => {
            list.expr = Box::new(plus_zero(*list.expr, schema));
            list.list = list
                .list
                .into_iter()
                .map(|e| plus_zero(e, schema))
                .collect();
            Transformed::yes(Expr::InList(list))
        }
        other => Transformed::no(other),
    })
}

/// `e + 0.0` (in e's own floating type); a literal has its zero's sign
/// dropped directly; anything not floating point is left alone.
fn plus_zero(e: Expr, schema: &DFSchema) -> Expr {
    match e {
        Expr::Literal(ScalarValue::Float64(Some(v)), meta) => {
            Expr::Literal(ScalarValue::Float64(Some(v + 0.0)), meta)
        }
        Expr::Literal(ScalarValue::Float32(Some(v)), meta) => {
            Expr::Literal(ScalarValue::Float32(Some(v + 0.0)), meta)
        }
        e @ Expr::Literal(..) => e,
        e => match e.get_type(schema) {
            Ok(DataType::Float64) => Expr::BinaryExpr(BinaryExpr::new(
                Box::new(e),
                Operator::Plus,
                Box::new(Expr::Literal(ScalarValue::Float64(Some(0.0)), None)),
            )),
            Ok(DataType::Float32) => Expr::BinaryExpr(BinaryExpr::new(
                Box::new(e),
                Operator::Plus,
                Box::new(Expr::Literal(ScalarValue::Float32(Some(0.0)), None)),
            )),
            _ => e,
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn adding_zero_drops_only_the_sign_of_zero() {
        assert!((-0.0f64 + 0.0).is_sign_positive());
        assert!((f64::NAN + 0.0).is_nan());
        assert_eq!(-1.5f64 + 0.0, -1.5);
        assert!((-0.0f32 + 0.0).is_sign_positive());
    }
}
