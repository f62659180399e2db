//! Pieces many operations share: the error answers, the list parameters,
//! path parameters, response headers, and a small builder of operations.

use fado_model::schema::{self, Name, reference};
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, Parameter, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    Content, Header, HeaderBuilder, RefOr, Required, Response, ResponseBuilder, Schema,
    schema as oas,
};

/// `(name, answer)` of every shared error answer, with the `code`s each
/// may carry (none: any).
const ERRORS: &[(&str, &str, &[&str])] = &[
    (
        "BadRequest",
        "The request was refused: `invalid` names the field or query parameter at fault; `invalid_json` when the body is not JSON.",
        &["invalid", "invalid_json", "bad_request"],
    ),
    ("NotFound", "No such resource.", &["not_found"]),
    (
        "Conflict",
        "The change conflicts with the catalog's state; the message says why.",
        &["conflict"],
    ),
    ("TooLarge", "The body exceeds 1 MiB.", &["too_large"]),
    (
        "InternalError",
        "A misconfiguration or an unexpected failure.",
        &[],
    ),
    (
        "Unavailable",
        "PostgreSQL is unreachable (`database_unavailable`), the database schema does not match this build (`schema_mismatch`), or a concurrent change won (`retry`: retry the request).",
        &["database_unavailable", "schema_mismatch", "retry"],
    ),
    (
        "StorageError",
        "The storage failed the request or could not be reached (`storage_error`).",
        &["storage_error"],
    ),
    (
        "StorageUnavailable",
        "The storage to use is unhealthy (`storage_unavailable`: the master copy for uploads and deletes, every copy for downloads; retry later), or as on other paths: `database_unavailable`, `schema_mismatch`, `retry`.",
        &[
            "storage_unavailable",
            "database_unavailable",
            "schema_mismatch",
            "retry",
        ],
    ),
];

/// The error body, narrowed to `codes` (none: any code).
pub fn error_schema(codes: &[&str]) -> RefOr<Schema> {
    let body = reference::<fado_model::api::ErrorBody>();
    if codes.is_empty() {
        return body;
    }
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.iter().copied()));
    let narrowed =
        ObjectBuilder::new().property("error", ObjectBuilder::new().property("code", code));
    Schema::from(AllOfBuilder::new().item(body).item(narrowed)).into()
}

/// An error answer described here, with its codes.
pub fn error(description: &str, codes: &[&str]) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(error_schema(codes))))
        .build()
}

/// The shared answers, for `components.responses`.
pub fn responses() -> Vec<(String, RefOr<Response>)> {
    let mut out: Vec<(String, RefOr<Response>)> = ERRORS
        .iter()
        .map(|(name, description, codes)| ((*name).to_string(), error(description, codes).into()))
        .collect();
    let mut unauthorized = error("The admin token is missing or wrong.", &["unauthorized"]);
    unauthorized
        .headers
        .insert("WWW-Authenticate".into(), www_authenticate());
    out.push(("Unauthorized".into(), unauthorized.into()));
    let mut unsatisfiable = error(
        "The range starts past the end of the object (`range_not_satisfiable`).",
        &["range_not_satisfiable"],
    );
    unsatisfiable
        .headers
        .insert("Content-Range".into(), unsatisfied_range());
    out.push(("RangeNotSatisfiable".into(), unsatisfiable.into()));
    out
}

/// A shared answer by name.
pub fn shared(name: &str) -> RefOr<Response> {
    RefOr::Ref(oas::Ref::from_response_name(name))
}

pub fn www_authenticate() -> Header {
    header("`Bearer realm=\"fado\"`", string())
}

pub fn unsatisfied_range() -> Header {
    header(
        "`bytes */size`: the object's size.",
        string().pattern(Some(r"^bytes \*/[0-9]+$")),
    )
}

pub fn header(description: &str, schema: ObjectBuilder) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

pub fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// JSON `content` of the schema named after `T`.
pub fn json_of<T: ToSchema>() -> Content {
    Content::new(Some(reference::<T>()))
}

/// Bytes of any type.
pub fn binary() -> Content {
    Content::new(Some(
        string().format(Some(SchemaFormat::Custom("binary".into()))),
    ))
}

// ---- parameters ----------------------------------------------------------

fn parameter(
    name: &str,
    place: ParameterIn,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> Parameter {
    let required = if matches!(place, ParameterIn::Path) {
        Required::True
    } else {
        Required::False
    };
    Parameter::builder()
        .name(name)
        .parameter_in(place)
        .required(required)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

pub fn query(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    parameter(name, ParameterIn::Query, description, schema)
}

pub fn limit() -> Parameter {
    query(
        "limit",
        "Page size.",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(1000))
            .default(Some(json!(100))),
    )
}

pub fn cursor() -> Parameter {
    query(
        "cursor",
        "The `next_cursor` of the previous page (opaque).",
        string(),
    )
}

/// `limit` and `cursor`.
pub fn paged() -> Vec<Parameter> {
    vec![limit(), cursor()]
}

/// A query parameter filtering by a cluster's id or name.
pub fn cluster_filter() -> Parameter {
    query(
        "cluster",
        "Only deployments in this cluster (id or name); a cluster that does not exist has none.",
        schema::id_or::<Name>(),
    )
}

/// A query parameter of free text (without NUL).
pub fn text_filter(name: &str, description: &str) -> Parameter {
    query(name, description, string().pattern(Some(schema::NO_NUL)))
}

/// A yes/no query flag, read as `true`, `1`, `false`, `0` or empty.
pub fn flag(name: &str, description: &str, default: Option<&str>) -> Parameter {
    query(
        name,
        description,
        string()
            .enum_values(Some(["true", "false", "1", "0", ""]))
            .default(default.map(|d| json!(d))),
    )
}

pub fn verify() -> Parameter {
    flag(
        "verify",
        "Check the endpoint and credentials against the storage before saving (one signed `ListBuckets`, 5 s timeout). `false` (or `0`) saves them unchecked, e.g. for storage that is not up yet; the health checker probes it later. Values other than `true`, `1`, `false`, `0` and empty are 400.",
        Some("true"),
    )
}

/// A path segment naming an item by id or name.
pub fn item(name: &str, noun: &str) -> Parameter {
    parameter(
        name,
        ParameterIn::Path,
        &format!("The {noun}'s id or name (digits are read as an id)."),
        schema::id_or::<Name>(),
    )
}

pub fn bucket() -> Parameter {
    parameter(
        "bucket",
        ParameterIn::Path,
        "The bucket's id or name. A segment of digits is always read as an id, so a bucket whose name is all digits can only be addressed by its id.",
        schema::id_or::<schema::BucketName>(),
    )
}

pub fn job() -> Parameter {
    parameter(
        "job",
        ParameterIn::Path,
        "The job's id (anything else is 404).",
        schema::id(),
    )
}

pub fn object_key() -> Parameter {
    parameter(
        "key",
        ParameterIn::Path,
        "The object key: the rest of the path, percent-decoded (`%2F` or a plain `/` for a slash; `+` is a plus). It must decode to UTF-8 and be 1 to 1024 bytes without control characters; otherwise 400 naming `key`.",
        reference::<schema::ObjectKey>(),
    )
}

pub fn range() -> Parameter {
    parameter(
        "Range",
        ParameterIn::Header,
        "One byte range: `bytes=first-last`, `bytes=first-` or `bytes=-suffix_length`. Several ranges or other units are ignored (the whole object is sent).",
        string(),
    )
}

// ---- operations ------------------------------------------------------------

/// An operation being described.
pub struct Op {
    pub method: HttpMethod,
    builder: OperationBuilder,
    responses: Vec<(u16, RefOr<Response>)>,
}

/// A new operation: `method`, its `operationId`, tag and summary.
pub fn op(method: HttpMethod, id: &str, tag: &str, summary: &str) -> Op {
    Op {
        method,
        builder: OperationBuilder::new()
            .operation_id(Some(id))
            .tag(tag)
            .summary(Some(summary)),
        responses: Vec::new(),
    }
}

impl Op {
    pub fn params(mut self, parameters: impl IntoIterator<Item = Parameter>) -> Op {
        for p in parameters {
            self.builder = self.builder.parameter(p);
        }
        self
    }

    /// A required JSON body of schema `schema`.
    pub fn body(mut self, schema: impl Into<RefOr<Schema>>) -> Op {
        self.builder = self.builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", Content::new(Some(schema)))
                .build(),
        ));
        self
    }

    /// A required JSON body of `T` with `required` fields besides those `T`
    /// requires itself.
    pub fn body_requiring<T: ToSchema>(self, required: &[&str]) -> Op {
        let mut extra =
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue);
        for field in required {
            extra = extra.required(*field);
        }
        self.body(Schema::from(
            AllOfBuilder::new().item(reference::<T>()).item(extra),
        ))
    }

    pub fn raw_body(mut self, body: utoipa::openapi::request_body::RequestBody) -> Op {
        self.builder = self.builder.request_body(Some(body));
        self
    }

    /// A JSON answer of the schema named after `T`.
    pub fn answers<T: ToSchema>(self, status: u16, description: &str) -> Op {
        self.answer(
            status,
            ResponseBuilder::new()
                .description(description)
                .content("application/json", json_of::<T>())
                .build(),
        )
    }

    pub fn answer(mut self, status: u16, response: impl Into<RefOr<Response>>) -> Op {
        self.responses.push((status, response.into()));
        self
    }

    /// Adds header `name` to the answer of `status` (described here).
    pub fn add_header(mut self, status: u16, name: &str, header: Header) -> Op {
        for (s, r) in &mut self.responses {
            if *s == status
                && let RefOr::T(r) = r
            {
                r.headers.insert(name.into(), header.clone());
            }
        }
        self
    }

    /// 204 with `description`.
    pub fn no_content(self, description: &str) -> Op {
        self.answer(204, ResponseBuilder::new().description(description).build())
    }

    /// The shared error answers by status: 400, 401, 404, 409, 413, 500,
    /// 502 (storage), 503.
    pub fn errors(mut self, statuses: &[u16]) -> Op {
        for status in statuses {
            let name = match status {
                400 => "BadRequest",
                401 => "Unauthorized",
                404 => "NotFound",
                409 => "Conflict",
                413 => "TooLarge",
                416 => "RangeNotSatisfiable",
                500 => "InternalError",
                502 => "StorageError",
                503 => "Unavailable",
                other => panic!("no shared answer for {other}"),
            };
            self = self.answer(*status, shared(name));
        }
        self
    }

    /// Served without the admin token.
    pub fn public(mut self) -> Op {
        self.builder = self
            .builder
            .securities(Some(Vec::<SecurityRequirement>::new()));
        self
    }

    pub fn build(mut self) -> Operation {
        self.responses.sort_by_key(|(status, _)| *status);
        for (status, response) in self.responses {
            self.builder = self.builder.response(status.to_string(), response);
        }
        self.builder.build()
    }
}
