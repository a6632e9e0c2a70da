//! Casts that lose information, kept as casts, and rounded as PostgreSQL
//! rounds them.
//!
//! DataFusion 53.1's expression simplifier removes a cast from a
//! comparison with a literal by casting the literal the other way
//! (`unwrap_cast_in_comparison`): `CAST(fare_amount AS INT) = 10` becomes
//! `fare_amount = 10.00`. That is only right when the cast loses nothing;
//! a decimal cast to an integer truncates, so 10.50 no longer matches
//! (apache/datafusion#23095, open). [`KeepLossyCasts`], an analyzer rule of
//! floe's session, turns every cast that can map two values to one (a
//! decimal to an integer or to fewer decimal places, a timestamp to a
//! coarser unit) into the [`LossyCast`] function, which computes the same
//! cast but which the simplifier does not look into. Output column names
//! stay as written.
//!
//! Casts to integers round in floe's session, as in PostgreSQL (where the
//! lake's numbers come from) and DuckDB: a decimal half away from zero
//! (`CAST(10.50 AS INT)` is 11), floating point half to even (`CAST(2.5 AS
//! INT)` on a double is 2, as `rint` does). DataFusion alone truncates.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct KeepLossyCasts;

impl AnalyzerRule for KeepLossyCasts {
    fn name(&self) -> &str {
        "floe_keep_lossy_casts"
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

/// A lossy `CAST` or `TRY_CAST` as [`LossyCast`]; anything else as it is.
fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let (inner, to, safe) = match &expr {
        Expr::Cast(c) => (&c.expr, &c.data_type, false),
        Expr::TryCast(c) => (&c.expr, &c.data_type, true),
        _ => return Ok(Transformed::no(expr)),
    };
    let Ok(from) = inner.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    if !is_lossy(&from, to) {
        return Ok(Transformed::no(expr));
    }
    let target = ScalarValue::try_from(to)?;
    let udf = Arc::new(ScalarUDF::new_from_impl(LossyCast::new(safe)));
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(
            udf,
            vec![inner.as_ref().clone(), Expr::Literal(target, None)],
        ),
    )))
}

/// Whether a cast from `from` to `to` can map two values to one, among the
/// types the simplifier unwraps casts of (integers, decimals, timestamps).
fn is_lossy(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let unit_rank = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    match (from, to) {
        (
            Decimal32(_, s) | Decimal64(_, s) | Decimal128(_, s) | Decimal256(_, s),
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64,
        ) => *s > 0,
        (
            Decimal32(_, s1) | Decimal64(_, s1) | Decimal128(_, s1) | Decimal256(_, s1),
            Decimal32(_, s2) | Decimal64(_, s2) | Decimal128(_, s2) | Decimal256(_, s2),
        ) => s2 < s1,
        (Timestamp(u1, _), Timestamp(u2, _)) => unit_rank(u2) < unit_rank(u1),
        // not unwrapped by the simplifier, but rounded differently
        (
            Float16 | Float32 | Float64,
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64,
        ) => true,
        _ => false,
    }
}

/// `lossy_cast(value, target)`: `value` cast to the type of `target` (a
/// typed null), exactly as `CAST` (or `TRY_CAST`, when `safe`) does it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LossyCast {
    signature: Signature,
    safe: bool,
}

impl LossyCast {
    pub fn new(safe: bool) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            safe,
        }
    }
}

impl ScalarUDFImpl for LossyCast {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        if self.safe {
            "try_lossy_cast"
        } else {
            "lossy_cast"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let to = args.return_field.data_type().clone();
        let options = CastOptions {
            safe: self.safe,
            ..CastOptions::default()
        };
        match &args.args[0] {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(lossy_cast(a, &to, &options)?)),
            ColumnarValue::Scalar(s) => {
                let a = lossy_cast(&s.to_array()?, &to, &options)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&a, 0)?))
            }
        }
    }
}

/// The cast, with a decimal going to an integer first rounded (half away
/// from zero) to a whole decimal: Arrow's decimal rescale rounds so, its
/// decimal-to-integer cast would truncate.
fn lossy_cast(
    a: &datafusion::arrow::array::ArrayRef,
    to: &DataType,
    options: &CastOptions,
) -> Result<datafusion::arrow::array::ArrayRef> {
    use DataType::*;
    let whole = match (a.data_type(), to) {
        (Decimal128(p, s), _) if *s > 0 && to.is_integer() => Some(Decimal128(*p, 0)),
        (Decimal256(p, s), _) if *s > 0 && to.is_integer() => Some(Decimal256(*p, 0)),
        _ => None,
    };
    if let Some(whole) = whole {
        return Ok(cast_with_options(
            &cast_with_options(a, &whole, options)?,
            to,
            options,
        )?);
    }
    if to.is_integer() && a.data_type().is_floating() {
        let f = cast_with_options(a, &Float64, options)?;
        let f = f
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Float64Array>()
            .ok_or_else(|| datafusion::common::DataFusionError::Internal("not a double".into()))?;
        let rounded: datafusion::arrow::array::Float64Array = f.unary(f64::round_ties_even);
        return Ok(cast_with_options(&rounded, to, options)?);
    }
    Ok(cast_with_options(a, to, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_to_integers_half_away_from_zero() {
        use datafusion::arrow::array::{Array, Decimal128Array, Int32Array};
        let a: datafusion::arrow::array::ArrayRef = Arc::new(
            Decimal128Array::from(vec![1050, 1049, -1050, -1049, 999])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let out = lossy_cast(&a, &DataType::Int32, &CastOptions::default()).unwrap();
        let out = out.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(out.values().as_ref(), &[11, 10, -11, -10, 10]);
    }

    #[test]
    fn doubles_round_to_integers_half_to_even() {
        use datafusion::arrow::array::{Float64Array, Int32Array};
        let a: datafusion::arrow::array::ArrayRef =
            Arc::new(Float64Array::from(vec![2.5, 3.5, -2.5, 2.4999, 12.75]));
        let out = lossy_cast(&a, &DataType::Int32, &CastOptions::default()).unwrap();
        let out = out.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(out.values().as_ref(), &[2, 4, -2, 2, 13]);
    }

    #[test]
    fn which_casts_lose_information() {
        use DataType::*;
        assert!(is_lossy(&Decimal128(10, 2), &Int32));
        assert!(is_lossy(&Decimal128(10, 2), &Decimal128(10, 1)));
        assert!(!is_lossy(&Decimal128(10, 0), &Int64));
        assert!(!is_lossy(&Decimal128(10, 2), &Decimal128(12, 2)));
        assert!(is_lossy(
            &Timestamp(TimeUnit::Microsecond, None),
            &Timestamp(TimeUnit::Second, None)
        ));
        assert!(!is_lossy(&Int32, &Int64));
        assert!(is_lossy(&Float64, &Int32), "rounded as PostgreSQL does");
        assert!(!is_lossy(&Int32, &Float64));
    }
}
