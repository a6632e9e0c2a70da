//! Where DataFusion 53.1's SQL answers differently from PostgreSQL's,
//! floe's session answers as PostgreSQL does: the lake's data comes from
//! PostgreSQL, and DuckDB (the other engine its tests compare with) agrees.
//! Each difference is an analyzer rule that rewrites the plan before
//! DataFusion's optimizer sees it:
//!
//! * [`literals`]: quoted numbers compared with numbers are numbers;
//!   `TIME` and `TIMESTAMP` literals have microseconds (before type
//!   coercion);
//! * [`zeros`]: -0.0 equals 0.0 in comparisons (after type coercion);
//! * [`casts`]: casts that lose information stay casts (DataFusion would
//!   rewrite `CAST(fare AS INT) = 10` into `fare = 10.00`), and casts to
//!   integers round rather than truncate (after type coercion).
//!
//! `tests/e2e/sql_differential.rs` runs 500-odd analyst queries through
//! the session and through DuckDB and expects the same answers.

use std::sync::Arc;

use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{LogicalPlan, Operator};
use datafusion::optimizer::{Analyzer, AnalyzerRule};

pub mod casts;
pub mod literals;
pub mod zeros;

/// The session's analyzer rules: DataFusion's own, with floe's around them.
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> =
        vec![Arc::new(literals::TypedLiterals)];
    rules.extend(Analyzer::new().rules);
    rules.push(Arc::new(zeros::ZeroIsZero));
    rules.push(Arc::new(casts::KeepLossyCasts));
    rules
}

/// The columns an expression of `plan` can refer to: its inputs', or the
/// scanned table's.
fn input_schema(plan: &LogicalPlan) -> Result<DFSchema> {
    Ok(match plan {
        LogicalPlan::TableScan(scan) => {
            DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())?
        }
        _ => merge_schema(&plan.inputs()),
    })
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Decimal128Array, Float64Array, Int32Array, RecordBatch, Time64MicrosecondArray,
        TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// A session with floe's rules over one table `t`: a decimal fare, an
    /// integer, a double with -0.0, a time and a timestamp.
    fn session() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("fare", DataType::Decimal128(10, 2), true),
            Field::new("n", DataType::Int32, true),
            Field::new("x", DataType::Float64, true),
            Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    Decimal128Array::from(vec![1050, 999, 1100, 1149])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(Int32Array::from(vec![10, 9, 11, 12])),
                Arc::new(Float64Array::from(vec![-0.0, 0.0, -1.0, 2.5])),
                Arc::new(Time64MicrosecondArray::from(vec![
                    0,
                    43_200_000_000,
                    86_399_999_999,
                    1,
                ])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    0,
                    i64::MAX,
                    -i64::MAX,
                    32_503_680_000_000_000,
                ])),
            ],
        )
        .unwrap();
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_analyzer_rules(super::analyzer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx
    }

    async fn one(sql: &str) -> String {
        let batches = session().sql(sql).await.unwrap().collect().await.unwrap();
        array_value_to_string(batches[0].column(0), 0).unwrap()
    }

    #[tokio::test]
    async fn answers_as_postgresql_gives_them() {
        // a lossy cast compared with a literal: 10.50, 11.00 and 11.49 are
        // 11 (DataFusion alone would answer 1: fare = 11.00)
        assert_eq!(
            one("SELECT count(*) FROM t WHERE CAST(fare AS INT) = 11").await,
            "3"
        );
        assert_eq!(
            one("SELECT count(*) FROM t WHERE CAST(fare AS INT) = 10").await,
            "1"
        );
        // quoted numbers compared as numbers (as text '9.99' > '10.5')
        assert_eq!(one("SELECT count(*) FROM t WHERE fare > '10.5'").await, "2");
        assert_eq!(
            one("SELECT count(*) FROM t WHERE n IN ('9', '12')").await,
            "2"
        );
        assert_eq!(one("SELECT count(*) FROM t WHERE x > '-0.5'").await, "3");
        // -0.0 is 0
        assert_eq!(one("SELECT count(*) FROM t WHERE x < 0").await, "1");
        assert_eq!(one("SELECT count(*) FROM t WHERE x = 0").await, "2");
        assert_eq!(
            one("SELECT count(*) FROM t WHERE x BETWEEN 0 AND 2.5").await,
            "3"
        );
        // TIME and TIMESTAMP literals in microseconds, past year 2262 too
        assert_eq!(
            one("SELECT count(*) FROM t WHERE t < TIME '12:00:00'").await,
            "2"
        );
        assert_eq!(
            one("SELECT count(*) FROM t WHERE t = TIME '23:59:59.999999'").await,
            "1"
        );
        assert_eq!(
            one("SELECT count(*) FROM t WHERE ts > TIMESTAMP '3000-01-01 00:00:00'").await,
            "1"
        );
        // casts to integers round: a double half to even
        assert_eq!(one("SELECT CAST(x AS INT) FROM t WHERE n = 12").await, "2");
    }

    #[tokio::test]
    async fn a_quoted_fraction_is_not_an_integer() {
        let query = session()
            .sql("SELECT count(*) FROM t WHERE n = '10.5'")
            .await;
        let err = match query {
            Ok(frame) => frame.collect().await.unwrap_err(),
            Err(e) => e,
        }
        .to_string();
        assert!(
            err.contains("invalid input syntax for type Int32: '10.5'"),
            "{err}"
        );
    }
}
