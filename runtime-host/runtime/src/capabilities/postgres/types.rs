//! Conversions between `spin:postgres` values and PostgreSQL types.
//!
//! Parameters are converted with the statement's declared parameter types in
//! hand, so a `datetime` binds to `timestamp` or `timestamptz`, integers
//! widen to the column's width, and a `str` binds to `json`, `uuid` or text.

use std::error::Error as StdError;

use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_range::{BoundSided, BoundType, Normalizable, Range, RangeBound};
use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use rust_decimal::Decimal;
use tokio_postgres::{Row, Statement};

use crate::bindings::spin::postgres::postgres::{
    Column, DbDataType, DbValue, Error, Interval, ParameterValue, RangeBoundKind, RowSet,
};

type BoxedSql = Box<dyn ToSql + Sync + Send>;
type BoxError = Box<dyn StdError + Sync + Send>;

pub fn as_refs(values: &[BoxedSql]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

pub fn parameters(params: &[ParameterValue], types: &[Type]) -> Result<Vec<BoxedSql>, Error> {
    if params.len() != types.len() {
        return Err(Error::BadParameter(format!(
            "the statement takes {} parameter(s) but {} were given",
            types.len(),
            params.len()
        )));
    }
    params
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (p, ty))| {
            parameter(p, ty).map_err(|e| Error::BadParameter(format!("parameter ${}: {e}", i + 1)))
        })
        .collect()
}

fn parameter(p: &ParameterValue, ty: &Type) -> Result<BoxedSql, String> {
    use ParameterValue as P;
    Ok(match p {
        P::Boolean(v) => Box::new(*v),
        P::Int8(v) => int(*v as i64, ty)?,
        P::Int16(v) => int(*v as i64, ty)?,
        P::Int32(v) => int(*v as i64, ty)?,
        P::Int64(v) => int(*v, ty)?,
        P::Floating32(v) if *ty == Type::FLOAT8 => Box::new(*v as f64),
        P::Floating32(v) => Box::new(*v),
        P::Floating64(v) => Box::new(*v),
        P::Str(s) if *ty == Type::JSON || *ty == Type::JSONB => Box::new(
            serde_json::from_str::<serde_json::Value>(s)
                .map_err(|e| format!("invalid JSON: {e}"))?,
        ),
        P::Str(s) if *ty == Type::UUID => Box::new(parse_uuid(s)?),
        P::Str(s) => Box::new(s.clone()),
        P::Binary(b) => Box::new(b.clone()),
        P::Date(d) => Box::new(date(*d)?),
        P::Time(t) => Box::new(time(*t)?),
        P::Datetime(dt) => {
            let naive = datetime(*dt)?;
            if *ty == Type::TIMESTAMPTZ {
                Box::new(naive.and_utc())
            } else {
                Box::new(naive)
            }
        }
        P::Timestamp(secs) => {
            let utc = DateTime::<Utc>::from_timestamp(*secs, 0)
                .ok_or_else(|| format!("timestamp {secs} is out of range"))?;
            if *ty == Type::TIMESTAMP {
                Box::new(utc.naive_utc())
            } else {
                Box::new(utc)
            }
        }
        P::Uuid(s) => Box::new(parse_uuid(s)?),
        P::Jsonb(bytes) => Box::new(
            serde_json::from_slice::<serde_json::Value>(bytes)
                .map_err(|e| format!("invalid JSON: {e}"))?,
        ),
        P::Decimal(s) => Box::new(decimal(s)?),
        P::RangeInt32(r) => Box::new(range(*r)),
        P::RangeInt64(r) => Box::new(range(*r)),
        P::RangeDecimal((lo, hi)) => {
            let conv = |b: &Option<(String, RangeBoundKind)>| -> Result<_, String> {
                b.as_ref()
                    .map(|(v, k)| Ok((RangeableDecimal(decimal(v)?), *k)))
                    .transpose()
            };
            Box::new(range((conv(lo)?, conv(hi)?)))
        }
        P::ArrayInt32(v) => Box::new(v.clone()),
        P::ArrayInt64(v) => Box::new(v.clone()),
        P::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|s| s.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<Option<Decimal>>, _>>()?,
        ),
        P::ArrayStr(v) => Box::new(v.clone()),
        P::Interval(i) => Box::new(PgInterval(*i)),
        P::DbNull => Box::new(PgNull),
    })
}

/// Binds an integer at the width the statement expects, refusing to truncate.
fn int(v: i64, ty: &Type) -> Result<BoxedSql, String> {
    let narrow = |what: &str| format!("{v} does not fit in {what}");
    Ok(match *ty {
        Type::INT2 => Box::new(i16::try_from(v).map_err(|_| narrow("smallint"))?),
        Type::INT4 => Box::new(i32::try_from(v).map_err(|_| narrow("integer"))?),
        Type::CHAR => Box::new(i8::try_from(v).map_err(|_| narrow("\"char\""))?),
        Type::FLOAT4 => Box::new(v as f32),
        Type::FLOAT8 => Box::new(v as f64),
        Type::NUMERIC => Box::new(Decimal::from(v)),
        _ => Box::new(v),
    })
}

fn parse_uuid(s: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(s).map_err(|e| format!("invalid UUID {s:?}: {e}"))
}

fn decimal(s: &str) -> Result<Decimal, String> {
    Decimal::from_str_exact(s).map_err(|e| format!("invalid decimal {s:?}: {e}"))
}

fn date((y, m, d): (i32, u8, u8)) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(y, m.into(), d.into())
        .ok_or_else(|| format!("invalid date {y}-{m}-{d}"))
}

fn time((h, m, s, ns): (u8, u8, u8, u32)) -> Result<NaiveTime, String> {
    NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
        .ok_or_else(|| format!("invalid time {h}:{m}:{s}.{ns}"))
}

fn datetime(
    (y, mo, d, h, mi, s, ns): (i32, u8, u8, u8, u8, u8, u32),
) -> Result<NaiveDateTime, String> {
    Ok(NaiveDateTime::new(date((y, mo, d))?, time((h, mi, s, ns))?))
}

type WitRange<T> = (Option<(T, RangeBoundKind)>, Option<(T, RangeBoundKind)>);

fn range<T: PartialOrd + Normalizable>((lo, hi): WitRange<T>) -> Range<T> {
    fn bound<S: BoundSided, T: PartialOrd>((v, k): (T, RangeBoundKind)) -> RangeBound<S, T> {
        let kind = match k {
            RangeBoundKind::Inclusive => BoundType::Inclusive,
            RangeBoundKind::Exclusive => BoundType::Exclusive,
        };
        RangeBound::new(v, kind)
    }
    Range::new(lo.map(bound), hi.map(bound))
}

fn wit_range<T, U>(r: &Range<T>, f: impl Fn(&T) -> U) -> WitRange<U>
where
    T: Clone + PartialOrd + Normalizable,
{
    fn kind(t: BoundType) -> RangeBoundKind {
        match t {
            BoundType::Inclusive => RangeBoundKind::Inclusive,
            BoundType::Exclusive => RangeBoundKind::Exclusive,
        }
    }
    (
        r.lower().map(|b| (f(&b.value), kind(b.type_))),
        r.upper().map(|b| (f(&b.value), kind(b.type_))),
    )
}

/// `numeric` is continuous, so its range bounds need no normalisation.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct RangeableDecimal(Decimal);

impl Normalizable for RangeableDecimal {
    fn normalize<S: BoundSided>(bound: RangeBound<S, Self>) -> RangeBound<S, Self> {
        bound
    }
}

impl ToSql for RangeableDecimal {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for RangeableDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Decimal::from_sql(ty, raw).map(RangeableDecimal)
    }
    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

/// `interval` in PostgreSQL's binary form: microseconds, days, months.
#[derive(Debug, Clone, Copy)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0.micros.to_be_bytes());
        out.extend_from_slice(&self.0.days.to_be_bytes());
        out.extend_from_slice(&self.0.months.to_be_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("interval must be 16 bytes".into());
        }
        Ok(PgInterval(Interval {
            micros: i64::from_be_bytes(raw[0..8].try_into()?),
            days: i32::from_be_bytes(raw[8..12].try_into()?),
            months: i32::from_be_bytes(raw[12..16].try_into()?),
        }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Any value, as its raw wire bytes, for types the interface has no case for.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

pub fn data_type(ty: &Type) -> DbDataType {
    use DbDataType as D;
    match *ty {
        Type::BOOL => D::Boolean,
        Type::CHAR => D::Int8,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => D::Str,
        Type::BYTEA => D::Binary,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::UUID => D::Uuid,
        Type::JSON | Type::JSONB => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(ty.name().to_string()),
    }
}

pub fn row_set(stmt: &Statement, rows: &[Row]) -> Result<RowSet, Error> {
    let columns = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
        })
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| value(row, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RowSet { columns, rows })
}

fn value(row: &Row, i: usize) -> Result<DbValue, Error> {
    use DbValue as V;
    let column = &row.columns()[i];
    let fail = |e: tokio_postgres::Error| {
        Error::ValueConversionFailed(format!("column {:?}: {e}", column.name()))
    };
    fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, tokio_postgres::Error> {
        row.try_get::<_, Option<T>>(i)
    }
    macro_rules! map {
        ($t:ty, $f:expr) => {
            match get::<$t>(row, i).map_err(fail)? {
                Some(v) => $f(v),
                None => V::DbNull,
            }
        };
    }
    Ok(match *column.type_() {
        Type::BOOL => map!(bool, V::Boolean),
        Type::CHAR => map!(i8, V::Int8),
        Type::INT2 => map!(i16, V::Int16),
        Type::INT4 => map!(i32, V::Int32),
        Type::INT8 => map!(i64, V::Int64),
        Type::FLOAT4 => map!(f32, V::Floating32),
        Type::FLOAT8 => map!(f64, V::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => map!(String, V::Str),
        Type::BYTEA => map!(Vec<u8>, V::Binary),
        Type::DATE => map!(NaiveDate, |d: NaiveDate| V::Date((
            d.year(),
            d.month() as u8,
            d.day() as u8
        ))),
        Type::TIME => map!(NaiveTime, |t: NaiveTime| V::Time((
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            t.nanosecond()
        ))),
        Type::TIMESTAMP => map!(NaiveDateTime, |dt: NaiveDateTime| V::Datetime(
            wit_datetime(dt)
        )),
        Type::TIMESTAMPTZ => map!(DateTime<Utc>, |dt: DateTime<Utc>| V::Datetime(
            wit_datetime(dt.naive_utc())
        )),
        Type::UUID => map!(uuid::Uuid, |u: uuid::Uuid| V::Uuid(u.to_string())),
        Type::JSON | Type::JSONB => map!(serde_json::Value, |j: serde_json::Value| V::Jsonb(
            serde_json::to_vec(&j).expect("a JSON value serialises")
        )),
        Type::NUMERIC => map!(Decimal, |d: Decimal| V::Decimal(d.to_string())),
        Type::INT4_RANGE => map!(Range<i32>, |r: Range<i32>| V::RangeInt32(wit_range(
            &r,
            |v| *v
        ))),
        Type::INT8_RANGE => map!(Range<i64>, |r: Range<i64>| V::RangeInt64(wit_range(
            &r,
            |v| *v
        ))),
        Type::NUM_RANGE => map!(Range<RangeableDecimal>, |r: Range<RangeableDecimal>| {
            V::RangeDecimal(wit_range(&r, |v| v.0.to_string()))
        }),
        Type::INT4_ARRAY => map!(Vec<Option<i32>>, V::ArrayInt32),
        Type::INT8_ARRAY => map!(Vec<Option<i64>>, V::ArrayInt64),
        Type::NUMERIC_ARRAY => map!(Vec<Option<Decimal>>, |v: Vec<Option<Decimal>>| {
            V::ArrayDecimal(v.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            map!(Vec<Option<String>>, V::ArrayStr)
        }
        Type::INTERVAL => map!(PgInterval, |i: PgInterval| V::Interval(i.0)),
        _ => map!(Raw, |r: Raw| V::Unsupported(r.0)),
    })
}

fn wit_datetime(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    (
        dt.year(),
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
        dt.nanosecond(),
    )
}
