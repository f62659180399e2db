//! The API's value formats as named OpenAPI schemas, stated beside the
//! checks in [`crate::validate`] that enforce them. The wire types keep
//! plain `String`s and integers (a bad value must reach the check, which
//! names the field); their fields point at these schemas with
//! `#[schema(value_type = …)]`, so the document says what the check accepts.

use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Schema, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{Page, Ref};

/// A reference to the named schema of `T`.
pub fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(schema::Ref::from_schema_name(T::name()))
}

/// JSON Schema keywords utoipa's schema model has no field for (`not`,
/// `const`, `propertyNames`), added to a schema's JSON as they are.
pub fn keywords(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Option<Extensions> {
    Some(pairs.into_iter().collect())
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer)
}

/// Text without control characters (C0, DEL and C1), as
/// [`crate::validate::text`] and [`crate::validate::object_key`] check.
pub const NO_CONTROLS: &str = r"^[^\x00-\x1f\x7f-\x9f]+$";
/// Any text without NUL, which PostgreSQL cannot store.
pub const NO_NUL: &str = r"^[^\x00]*$";

macro_rules! named {
    ($(#[$meta:meta])* $name:ident $([$($uses:ident),*])? => $schema:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                Schema::from($schema).into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schemas(_out: &mut Vec<(String, RefOr<Schema>)>) {
                $($(_out.push(($uses::name().into(), $uses::schema()));)*)?
            }
        }
    };
}

named! {
    /// [`crate::validate::name`].
    Name => string()
        .min_length(Some(1))
        .max_length(Some(63))
        .pattern(Some("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"))
        .description(Some(
            "Name of a cluster or deployment: 1-63 lowercase letters, digits and '-', starting \
             with a letter (so it never looks like an id) and not ending with '-'.",
        ))
}

named! {
    /// [`crate::validate::label`].
    Label => string()
        .min_length(Some(1))
        .max_length(Some(63))
        .pattern(Some("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))
        .description(Some(
            "A zone or label: 1-63 lowercase letters, digits and '-', not starting or ending \
             with '-'.",
        ))
}

named! {
    /// [`crate::validate::labels`].
    Labels [Label] => ArrayBuilder::new()
        .items(reference::<Label>())
        .max_items(Some(64))
        .unique_items(true)
        .description(Some("At most 64 distinct labels; stored and returned sorted."))
}

named! {
    /// [`crate::validate::bucket_name`].
    BucketName => string()
        .min_length(Some(3))
        .max_length(Some(63))
        .pattern(Some("^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))
        .extensions(keywords([(
            "not",
            json!({"anyOf": [
                {"type": "string", "pattern": r"(\.\.|\.-|-\.)"},
                {"type": "string", "pattern":
                    r"^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$"},
                {"type": "string", "pattern": "^(xn--|sthree-|amzn-s3-demo-)"},
                {"type": "string", "pattern": r"(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$"},
            ]}),
        )]))
        .description(Some(
            "S3 general-purpose bucket naming rules: 3-63 lowercase letters, digits, '.' and \
             '-'; begins and ends with a letter or digit; no '..', '.-' or '-.'; not an IPv4 \
             address; none of the reserved prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or \
             suffixes (`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`).",
        ))
}

named! {
    /// [`crate::validate::base_url`].
    BaseUrl => string()
        .format(Some(SchemaFormat::Custom("uri".into())))
        .pattern(Some(r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+(/[^?#]*)?$"))
        .description(Some(
            "An http or https URL with a host, without credentials, query or fragment. Stored \
             normalised: lower-case scheme and host, without a trailing '/'.",
        ))
}

named! {
    /// [`crate::validate::path_template`].
    PathTemplate => string()
        .pattern(Some(
            r"^(/[^?#{}\s\x00-\x1f\x7f-\x9f]*(\{function\}[^?#{}\s\x00-\x1f\x7f-\x9f]*)?)?$",
        ))
        .description(Some(
            "Invocation path: empty (a Lambda function URL) or an absolute path without query, \
             fragment, spaces or control characters, containing the placeholder `{function}` at \
             most once.",
        ))
}

named! {
    /// [`crate::validate::header_name`].
    HeaderName => string()
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some("^[A-Za-z0-9-]+$"))
        .description(Some("An HTTP header name: 1-64 letters, digits and '-'."))
}

named! {
    /// [`crate::validate::region`].
    Region => string()
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .description(Some("An S3 region name: 1-64 letters, digits, '-' and '_'."))
}

fn credential() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(crate::validate::MAX_CREDENTIAL))
        .pattern(Some(NO_CONTROLS))
}

named! {
    /// [`crate::validate::text`] with the credential limit.
    Credential => credential()
        .description(Some("1 to 256 characters of text without control characters."))
}

/// `StorageInput.secret_key`: a credential that is never returned.
pub fn secret_key() -> Schema {
    credential()
        .write_only(Some(true))
        .description(Some(
            "1 to 256 characters of text without control characters. Stored encrypted; never \
             returned.",
        ))
        .into()
}

named! {
    /// A storage deployment's notification token: 16 or more characters of
    /// a credential, or `""` for none.
    NotifyToken => AnyOfBuilder::new()
        .item(
            string()
                .write_only(Some(true))
                .extensions(keywords([("const", json!(""))])),
        )
        .item(
            credential()
                .min_length(Some(crate::validate::MIN_NOTIFY_TOKEN))
                .write_only(Some(true)),
        )
        .description(Some(
            "The bearer token the storage's event notifications to `/notify/{storage}` must \
             carry: 16 to 256 characters, stored as a SHA-256 digest and never returned. `\"\"` \
             turns notifications off.",
        ))
}

named! {
    /// How the catalog writes times.
    Timestamp => string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("UTC, RFC 3339 with microseconds (`2026-01-31T12:00:00.000000Z`)."))
}

named! {
    /// [`crate::validate::timeout_ms`].
    TimeoutMs => integer()
        .minimum(Some(1))
        .maximum(Some(3_600_000))
        .description(Some("Invocation timeout in milliseconds."))
}

named! {
    /// The catalog's bound on a bucket's replica count.
    TargetReplicas => integer()
        .minimum(Some(0))
        .maximum(Some(crate::validate::MAX_TARGET_REPLICAS))
        .description(Some("How many replicas the planner keeps besides the master copy."))
}

named! {
    /// [`crate::validate::object_key`].
    ObjectKey => string()
        .min_length(Some(1))
        .max_length(Some(1024))
        .pattern(Some(NO_CONTROLS))
}

/// A positive id.
pub fn id() -> ObjectBuilder {
    integer()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
}

/// An id, or a name of the format `T` (a URL segment of digits is an id).
pub fn id_or<T: ToSchema>() -> Schema {
    AnyOfBuilder::new()
        .item(id())
        .item(reference::<T>())
        .build()
        .into()
}

impl PartialSchema for Ref {
    fn schema() -> RefOr<Schema> {
        Schema::from(
            OneOfBuilder::new()
                .item(id().description(Some("The resource's id.")))
                .item(reference::<Name>())
                .description(Some(
                    "A reference to another resource: its numeric id or its name (a JSON string \
                     is always read as a name). A reference to nothing answers 409 naming the \
                     field.",
                )),
        )
        .into()
    }
}

impl ToSchema for Ref {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((Name::name().into(), Name::schema()));
    }
}

/// A page is named after its items: `ClusterPage`, `JobPage`, ….
impl<T: ToSchema> PartialSchema for Page<T> {
    fn schema() -> RefOr<Schema> {
        Schema::from(
            ObjectBuilder::new()
                .description(Some(format!("A page of {}, in list order.", T::name())))
                .property("items", ArrayBuilder::new().items(reference::<T>()))
                .required("items")
                .property(
                    "next_cursor",
                    ObjectBuilder::new()
                        .schema_type(schema::SchemaType::from_iter([Type::String, Type::Null]))
                        .description(Some(
                            "Pass as `cursor` for the next page; null on the last page.",
                        )),
                )
                .required("next_cursor")
                .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        )
        .into()
    }
}

impl<T: ToSchema> ToSchema for Page<T> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("{}Page", T::name()))
    }

    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((T::name().into(), T::schema()));
        T::schemas(out);
    }
}

/// `BucketInput.replica_override`: a list of distinct references, or null.
pub fn replica_override() -> Schema {
    ArrayBuilder::new()
        .schema_type(schema::SchemaType::from_iter([Type::Array, Type::Null]))
        .items(reference::<Ref>())
        .unique_items(true)
        .description(Some(
            "A list (possibly empty) of storage deployments sets the replicas by hand: none may \
             be the master, be listed twice or lie outside the allowed zones. `null` clears the \
             override; leaving the field out keeps it.",
        ))
        .into()
}

/// `RouteOverrideInput.faas`: one or more distinct references.
pub fn route_override_faas() -> Schema {
    ArrayBuilder::new()
        .items(reference::<Ref>())
        .min_items(Some(1))
        .unique_items(true)
        .description(Some("Existing FaaS deployments, each listed once."))
        .into()
}

/// Only `null`.
pub fn null() -> Schema {
    ObjectBuilder::new().schema_type(Type::Null).into()
}
