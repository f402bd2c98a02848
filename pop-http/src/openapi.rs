//! The OpenAPI document of the API, generated from the same route table the router uses and the
//! `utoipa::ToSchema` derives of the wire types (pop-core's and pop-engine's `openapi` feature).

use crate::dto::{
    AgendaIdRequest, AgendaProgressResponse, AgendasResponse, CreateAgendaRequest, ExtendLeaseRequest,
    GetAgendaRequest, GetAgendaResponse, LeaseResponse, OperationDetail, OperationRequest, ProgressSummaryRequest,
    Readiness, ReleaseAgendaRequest, RerunAgendaRequest, RunAgendaRequest, UpdateAgendaProgressRequest,
    UpdateAgendaRequest, UpdateAgendaResponse, ValidateResponse,
};
use crate::error::ErrorBody;
use pop_core::dag::GraphDocument;
use pop_core::model::{Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, OperationProgress, ResourcePool};
use pop_engine::services::{Explain, ProgressSummary, QueueStats};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
    ResponseBuilder,
};

/// A data-object kind in the document: its path segment, tag and schema name.
struct Kind {
    path: &'static str,
    schema: &'static str,
    indexed: &'static [&'static str],
    writable: bool,
    deletable: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        path: "agenda",
        schema: "Agenda",
        indexed: &["customerId", "linkId", "title"],
        writable: false,
        deletable: true,
    },
    Kind {
        path: "agendatemplate",
        schema: "AgendaTemplate",
        indexed: &["customerId", "title"],
        writable: true,
        deletable: true,
    },
    Kind {
        path: "customer",
        schema: "Customer",
        indexed: &["customerId", "resourcePoolId", "title"],
        writable: true,
        deletable: true,
    },
    Kind {
        path: "insight",
        schema: "Insight",
        indexed: &["customerId", "resourcePoolId", "title"],
        writable: true,
        deletable: true,
    },
    Kind {
        path: "resourcepool",
        schema: "ResourcePool",
        indexed: &["customerId", "title"],
        writable: true,
        deletable: true,
    },
    Kind {
        path: "progress/agenda",
        schema: "AgendaProgress",
        indexed: &["customerId", "linkId", "agendaId", "title"],
        writable: false,
        deletable: true,
    },
    Kind {
        path: "progress/operation",
        schema: "OperationProgress",
        indexed: &["customerId", "agendaProgressId"],
        writable: false,
        deletable: false,
    },
];

/// The services: path, request schema, response schema, summary.
const SERVICES: &[(&str, &str, &str, &str)] = &[
    (
        "/pop/agenda/service/run",
        "RunAgendaRequest",
        "AgendasResponse",
        "Expand a template with a payload and submit the agenda",
    ),
    (
        "/pop/agenda/service/rerun",
        "RerunAgendaRequest",
        "AgendaProgressResponse",
        "Rerun an agenda (resetAll, continue, operationsToReset, skipExecution)",
    ),
    ("/pop/agenda/service/cancel", "AgendaIdRequest", "AgendaProgressResponse", "Cancel an agenda in any state"),
    (
        "/pop/agenda/service/createAgenda",
        "CreateAgendaRequest",
        "AgendasResponse",
        "Submit several agendas, each on its own",
    ),
    ("/pop/agenda/service/explain", "AgendaIdRequest", "Explain", "Where an agenda is and why it waits"),
    (
        "/pop/agenda/service/graph",
        "AgendaIdRequest",
        "GraphDocument",
        "An agenda's dependency graph with topological layers",
    ),
    ("/pop/agenda/service/validate", "Agenda", "ValidateResponse", "Validate an agenda without submitting it"),
    (
        "/pop/agenda/service/operation",
        "OperationRequest",
        "OperationDetail",
        "One operation with its payload resolved against the outputs so far, and its progress",
    ),
    ("/pop/progress/agenda/service", "ProgressSummaryRequest", "ProgressSummary", "The rolled-up progress of a linkId"),
    (
        "/pop/resourcepool/service/getAgenda",
        "GetAgendaRequest",
        "GetAgendaResponse",
        "Lease agendas of an insight (pool)",
    ),
    (
        "/pop/resourcepool/service/createAgenda",
        "CreateAgendaRequest",
        "AgendasResponse",
        "Submit several agendas, each on its own (the original's route)",
    ),
    (
        "/pop/resourcepool/service/updateAgendaProgress",
        "UpdateAgendaProgressRequest",
        "LeaseResponse",
        "Write progress under a lease (pool)",
    ),
    (
        "/pop/resourcepool/service/finishAgenda",
        "UpdateAgendaProgressRequest",
        "LeaseResponse",
        "Write the final progress and acknowledge the lease (pool)",
    ),
    (
        "/pop/resourcepool/service/updateAgenda",
        "UpdateAgendaRequest",
        "UpdateAgendaResponse",
        "Add generated operations under a lease (pool)",
    ),
    ("/pop/resourcepool/service/extendLease", "ExtendLeaseRequest", "LeaseResponse", "Extend a lease (pool heartbeat)"),
    (
        "/pop/resourcepool/service/releaseAgenda",
        "ReleaseAgendaRequest",
        "LeaseResponse",
        "Give a pulled agenda back unstarted (pool admission)",
    ),
];

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn string_param(
    name: &str,
    location: ParameterIn,
    required: bool,
    description: &str,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(if required { Required::True } else { Required::False })
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The `{all, count, cid, next}` envelope of a kind.
fn list_of(schema: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .property("all", ArrayBuilder::new().items(schema_ref(schema)))
            .required("all")
            .property("count", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
            .required("count")
            .property("cid", ObjectBuilder::new().schema_type(Type::String))
            .property("next", ObjectBuilder::new().schema_type(Type::String))
            .build(),
    ))
}

/// An operation with the standard error answers.
fn operation(id: String, tag: &str, summary: &str) -> OperationBuilder {
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag)
        .summary(Some(summary))
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    for (code, what) in [
        ("400", "Malformed request (not JSON, unknown parameter)"),
        ("401", "No or unknown credentials"),
        ("403", "The caller may see the object but not do this"),
        ("404", "No such object, or not visible to the caller"),
        ("408", "The request took longer than the server's time limit"),
        ("409", "Changed meanwhile, a lost lease, or an agenda in the wrong state"),
        ("413", "Request body too large"),
        ("422", "Invalid input: every problem named"),
        ("503", "The store is unreachable"),
    ] {
        op = op.response(
            code,
            ResponseBuilder::new().description(what).content("application/json", json(schema_ref("ErrorBody"))),
        );
    }
    op
}

fn kind_paths(paths: PathsBuilder, kind: &Kind) -> PathsBuilder {
    let tag = kind.path.replace('/', "");
    let ok = |schema: RefOr<Schema>| ResponseBuilder::new().description("OK").content("application/json", json(schema));
    let body = |name: &str| {
        Some(
            RequestBodyBuilder::new()
                .content("application/json", json(schema_ref(name)))
                .required(Some(Required::True))
                .build(),
        )
    };
    let mut query = operation(
        format!("query_{tag}"),
        &tag,
        &format!("Query {} (by an indexed field, or every visible one)", kind.schema),
    )
    .response("200", ok(list_of(kind.schema)))
    .parameter(string_param("id", ParameterIn::Query, false, "one object by id (an empty list when absent)"))
    .parameter(
        ParameterBuilder::new()
            .name("bylimit")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("page size, 1 to 1000 (default 100)"))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(crate::extract::MAX_LIMIT as u64)),
            ))
            .build(),
    )
    .parameter(string_param("bycursor", ParameterIn::Query, false, "the `next` of the previous page"))
    .parameter(
        ParameterBuilder::new()
            .name("bycount")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("`true`: the count only"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
            .build(),
    )
    .parameter(string_param("byfields", ParameterIn::Query, false, "comma-separated fields to return"));
    for f in kind.indexed {
        query = query.parameter(string_param(
            &format!("by{f}"),
            ParameterIn::Query,
            false,
            &format!("objects whose {f} equals this"),
        ));
    }
    let mut collection = PathItem::new(HttpMethod::Get, query.build());
    let mut one = PathItem::new(
        HttpMethod::Get,
        operation(format!("get_{tag}"), &tag, &format!("One {}", kind.schema))
            .parameter(string_param("id", ParameterIn::Path, true, "the object's id"))
            .response("200", ok(list_of(kind.schema)))
            .build(),
    );
    if kind.writable || kind.path == "agenda" {
        let summary = if kind.path == "agenda" { "Submit an agenda" } else { "Create an object" };
        let create: Operation = operation(format!("create_{tag}"), &tag, summary)
            .request_body(body(kind.schema))
            .response("200", ok(list_of(kind.schema)))
            .build();
        collection.post = Some(create);
    }
    if kind.writable {
        one.put = Some(
            operation(
                format!("update_{tag}"),
                &tag,
                "Merge-update: the body's non-null fields replace the stored ones",
            )
            .parameter(string_param("id", ParameterIn::Path, true, "the object's id"))
            .request_body(body(kind.schema))
            .response("200", ok(list_of(kind.schema)))
            .build(),
        );
    }
    if kind.deletable {
        one.delete = Some(
            operation(format!("delete_{tag}"), &tag, "Delete (with the original's cascades)")
                .parameter(string_param("id", ParameterIn::Path, true, "the object's id"))
                .response("200", ok(list_of(kind.schema)))
                .build(),
        );
    }
    paths.path(format!("/pop/{}", kind.path), collection).path(format!("/pop/{}/{{id}}", kind.path), one)
}

/// Adds `T` and every schema it refers to.
fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    T::schemas(schemas);
    schemas.push((T::name().into_owned(), T::schema()));
}

/// The document served at `/openapi.json`.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for kind in KINDS {
        paths = kind_paths(paths, kind);
    }
    for (path, request, response, summary) in SERVICES {
        let tag = if path.contains("resourcepool") {
            "pool"
        } else if path.contains("progress") {
            "progress"
        } else {
            "agenda"
        };
        let id = path.trim_start_matches("/pop/").replace(['/', '-'], "_");
        let op = operation(id, tag, summary)
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(schema_ref(request)))
                    .required(Some(Required::True))
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new().description("OK").content("application/json", json(schema_ref(response))),
            );
        // A bulk submission where some agendas failed: the stored ones and a failure per index.
        let op = if path.ends_with("/createAgenda") {
            op.response(
                "207",
                ResponseBuilder::new()
                    .description("Some agendas were stored, some failed (`failures`, by index)")
                    .content("application/json", json(schema_ref(response))),
            )
        } else {
            op
        }
        .build();
        paths = paths.path(*path, PathItem::new(HttpMethod::Post, op));
    }
    let plain = |id: &str, summary: &str, schema: Option<&str>| {
        let mut ok = ResponseBuilder::new().description("OK");
        if let Some(s) = schema {
            ok = ok.content("application/json", json(schema_ref(s)));
        }
        PathItem::new(
            HttpMethod::Get,
            OperationBuilder::new()
                .operation_id(Some(id))
                .tag("operations")
                .summary(Some(summary))
                .response("200", ok)
                .build(),
        )
    };
    let authed_get =
        |id: &str, tag: &str, summary: &str, param: Option<(&str, &str)>, content: (&str, RefOr<Schema>)| {
            let mut op = operation(id.to_owned(), tag, summary)
                .response("200", ResponseBuilder::new().description("OK").content(content.0, json(content.1)));
            if let Some((name, what)) = param {
                op = op.parameter(string_param(name, ParameterIn::Path, true, what));
            }
            PathItem::new(HttpMethod::Get, op.build())
        };
    paths = paths
        .path(
            "/pop/progress/agenda/{id}/events",
            authed_get(
                "progress_agenda_events",
                "progress",
                "An agenda progress as server-sent events (`progress` on each change, `end` after COMPLETE)",
                Some(("id", "the agenda progress id")),
                ("text/event-stream", RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).build()))),
            ),
        )
        .path(
            "/pop/queue/stats",
            authed_get(
                "queue_stats_all",
                "queue",
                "The queues of every insight the caller may read",
                None,
                (
                    "application/json",
                    RefOr::T(Schema::Array(ArrayBuilder::new().items(schema_ref("QueueStats")).build())),
                ),
            ),
        )
        .path(
            "/pop/queue/stats/{insightId}",
            authed_get(
                "queue_stats",
                "queue",
                "One insight's queue: depth, ready agendas per visible customer, algorithm and state",
                Some(("insightId", "the insight")),
                ("application/json", schema_ref("QueueStats")),
            ),
        );
    paths = paths
        .path("/healthz", plain("healthz", "The process answers", None))
        .path("/readyz", plain("readyz", "The store answers (503 otherwise)", Some("Readiness")))
        .path("/metrics", plain("metrics", "Prometheus metrics (text)", None));

    let mut schemas = Vec::new();
    add::<Agenda>(&mut schemas);
    add::<AgendaTemplate>(&mut schemas);
    add::<Customer>(&mut schemas);
    add::<Insight>(&mut schemas);
    add::<ResourcePool>(&mut schemas);
    add::<AgendaProgress>(&mut schemas);
    add::<OperationProgress>(&mut schemas);
    add::<RunAgendaRequest>(&mut schemas);
    add::<RerunAgendaRequest>(&mut schemas);
    add::<AgendaIdRequest>(&mut schemas);
    add::<CreateAgendaRequest>(&mut schemas);
    add::<AgendasResponse>(&mut schemas);
    add::<AgendaProgressResponse>(&mut schemas);
    add::<ProgressSummaryRequest>(&mut schemas);
    add::<ProgressSummary>(&mut schemas);
    add::<Explain>(&mut schemas);
    add::<GraphDocument>(&mut schemas);
    add::<ValidateResponse>(&mut schemas);
    add::<OperationRequest>(&mut schemas);
    add::<OperationDetail>(&mut schemas);
    add::<QueueStats>(&mut schemas);
    add::<GetAgendaRequest>(&mut schemas);
    add::<GetAgendaResponse>(&mut schemas);
    add::<UpdateAgendaProgressRequest>(&mut schemas);
    add::<UpdateAgendaRequest>(&mut schemas);
    add::<UpdateAgendaResponse>(&mut schemas);
    add::<ExtendLeaseRequest>(&mut schemas);
    add::<ReleaseAgendaRequest>(&mut schemas);
    add::<LeaseResponse>(&mut schemas);
    add::<Readiness>(&mut schemas);
    add::<ErrorBody>(&mut schemas);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()))
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("POP for Rust")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The original POP's API (data-object CRUD with by<field> queries, the agenda, progress and \
                     resource-pool services) with POP's additions: lease tokens that fence every pool write, \
                     cursors, cancel, explain, graph, validate.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}
