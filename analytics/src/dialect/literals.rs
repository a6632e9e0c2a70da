//! Literals typed as PostgreSQL types them, before DataFusion's own type
//! coercion runs ([`TypedLiterals`], an analyzer rule):
//!
//! * **Quoted numbers compared with numbers are numbers.** In PostgreSQL
//!   (and DuckDB) a quoted literal takes the type of what it is compared
//!   with, so `fare_amount > '10.5'` compares amounts. DataFusion 53.1
//!   coerces the other way, the column to text, and compares strings: on
//!   the quickstart lake that query counts 18,788 trips where 16,231 have a
//!   fare above 10.5. A quoted number next to a numeric expression (`=`,
//!   `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`) becomes an integer, an
//!   exact decimal or, next to floating point, a double; next to an integer
//!   column a quoted fraction is an error, as in PostgreSQL ("invalid input
//!   syntax for type integer"). Text that is not a number is left alone.
//! * **`TIME '…'` and `TIMESTAMP '…'` have microseconds**, as PostgreSQL's
//!   and the lake's do. DataFusion makes them nanoseconds, which cannot be
//!   compared with a microsecond `time` column at all, and cannot hold a
//!   timestamp before 1677 or after 2262 (`TIMESTAMP '3000-01-01'` fails).

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{plan_err, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::{Between, BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct TypedLiterals;

impl AnalyzerRule for TypedLiterals {
    fn name(&self) -> &str {
        "floe_typed_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = super::input_schema(&plan)?;
            plan.map_expressions(|expr| expr.transform_up(|e| rewrite(e, &schema)))
        })
        .map(|t| t.data)
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let numeric = |e: &Expr| e.get_type(schema).ok().filter(DataType::is_numeric);
    // a quoted number beside `other`, as a literal of other's kind
    let beside = |quoted: &Expr, other: &Expr| -> Result<Option<Expr>> {
        match numeric(other) {
            Some(ty) => number(quoted, &ty),
            None => Ok(None),
        }
    };
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if super::is_comparison(op) => {
            if let Some(n) = beside(&left, &right)? {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(n), op, right)))
            } else if let Some(n) = beside(&right, &left)? {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, op, Box::new(n))))
            } else {
                Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))
            }
        }
        Expr::Between(b) => {
            let low = beside(&b.low, &b.expr)?;
            let high = beside(&b.high, &b.expr)?;
            if low.is_none() && high.is_none() {
                return Ok(Transformed::no(Expr::Between(b)));
            }
            Transformed::yes(Expr::Between(Between::new(
                b.expr,
                b.negated,
                Box::new(low.unwrap_or(*b.low)),
                Box::new(high.unwrap_or(*b.high)),
            )))
        }
        Expr::InList(mut list) => {
            let mut changed = false;
            let mut items = Vec::with_capacity(list.list.len());
            for e in std::mem::take(&mut list.list) {
                match beside(&e, &list.expr)? {
                    Some(n) => {
                        changed = true;
                        items.push(n);
                    }
                    None => items.push(e),
                }
            }
            list.list = items;
            Transformed::new_transformed(Expr::InList(list), changed)
        }
        Expr::Cast(Cast { expr, data_type }) => match (expr.as_ref(), &data_type) {
            // TIME '…' and TIMESTAMP '…' in microseconds
            (Expr::Literal(ScalarValue::Utf8(_), _), DataType::Time64(TimeUnit::Nanosecond)) => {
                let micros = DataType::Time64(TimeUnit::Microsecond);
                Transformed::yes(Expr::Cast(Cast::new(expr, micros)))
            }
            (
                Expr::Literal(ScalarValue::Utf8(_), _),
                DataType::Timestamp(TimeUnit::Nanosecond, tz),
            ) => {
                let micros = DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
                Transformed::yes(Expr::Cast(Cast::new(expr, micros)))
            }
            _ => Transformed::no(Expr::Cast(Cast { expr, data_type })),
        },
        other => Transformed::no(other),
    })
}

/// A quoted number as a literal to compare with a value of type `beside`:
/// a double beside floating point, else an integer or an exact decimal;
/// a fraction beside an integer is an error. None for anything else.
fn number(e: &Expr, beside: &DataType) -> Result<Option<Expr>> {
    let Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::LargeUtf8(Some(text)), _) = e
    else {
        return Ok(None);
    };
    let Some(value) = parse_number(text.trim()) else {
        return Ok(None);
    };
    let value = match (&value, beside) {
        (_, DataType::Float16 | DataType::Float32 | DataType::Float64) => match text.trim().parse::<f64>() {
            Ok(f) => ScalarValue::Float64(Some(f)),
            Err(_) => return Ok(None),
        },
        (ScalarValue::Decimal128(..), t) if t.is_integer() => {
            return plan_err!(
                "invalid input syntax for type {t}: '{text}' (a quoted number compared with an integer must be an integer, as in PostgreSQL; write {} to compare numerically)",
                text.trim()
            )
        }
        _ => value,
    };
    Ok(Some(Expr::Literal(value, None)))
}

fn parse_number(text: &str) -> Option<ScalarValue> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let all = format!("{whole}{fraction}");
    let all = all.trim_start_matches('0');
    let value: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    let value = if negative { -value } else { value };
    if fraction.is_empty() {
        return i64::try_from(value)
            .ok()
            .map(|v| ScalarValue::Int64(Some(v)));
    }
    let scale = u8::try_from(fraction.len()).ok()?;
    let precision = u8::try_from(all.len().max(fraction.len()).max(1)).ok()?;
    if precision > 38 {
        return None;
    }
    Some(ScalarValue::Decimal128(Some(value), precision, scale as i8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_numbers_become_numbers() {
        assert_eq!(parse_number("10"), Some(ScalarValue::Int64(Some(10))));
        assert_eq!(parse_number("-3"), Some(ScalarValue::Int64(Some(-3))));
        assert_eq!(
            parse_number("10.5"),
            Some(ScalarValue::Decimal128(Some(105), 3, 1))
        );
        assert_eq!(
            parse_number("-0.25"),
            Some(ScalarValue::Decimal128(Some(-25), 2, 2))
        );
        assert_eq!(
            parse_number(".5"),
            Some(ScalarValue::Decimal128(Some(5), 1, 1))
        );
        for not in ["", ".", "1e5", "ten", "1.2.3", "--1", "12a"] {
            assert_eq!(parse_number(not), None, "{not:?}");
        }
    }
}
