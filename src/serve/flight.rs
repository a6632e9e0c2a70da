//! Arrow Flight SQL: the lake to ADBC and JDBC drivers, BI tools and
//! notebooks, over gRPC on its own port (`[serve] flight_listen`).
//!
//! Statements and prepared statements (with `$1`... parameters bound
//! through DoPut) are planned read-only by `analytics::serve`, like the
//! HTTP API's; results stream batch by batch as the plan produces them,
//! never collected first. A client that goes away (or cancels) drops the
//! stream, which stops the plan. The limits: the HTTP API's time limit,
//! memory limit per query and concurrency cap, and `flight_max_rows` on
//! every stream (an error past it, not a silent cut).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use analytics::serve::{QueryError, ReadOnlyQueries};
use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTables, CommandPreparedStatementQuery, CommandStatementQuery,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::dataframe::DataFrame;
use datafusion::scalar::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

type DoGetStream = <FlightSqlServer as FlightService>::DoGetStream;

/// The Flight SQL service over the lake.
pub struct FlightSqlServer {
    queries: ReadOnlyQueries,
    token: Option<String>,
    running: Arc<Semaphore>,
    /// Rows one result streams at most (`[serve] flight_max_rows`).
    max_rows: usize,
    /// Prepared statements by handle: their SQL, and the parameters bound.
    prepared: Mutex<HashMap<String, Prepared>>,
    sql_info: SqlInfoData,
}

#[derive(Clone)]
struct Prepared {
    sql: String,
    params: Option<Vec<ScalarValue>>,
}

/// Prepared statements one server keeps at most (a client that never
/// closes its statements cannot grow the server without bound).
const MAX_PREPARED: usize = 1024;

impl FlightSqlServer {
    pub fn new(
        queries: ReadOnlyQueries,
        token: Option<String>,
        running: Arc<Semaphore>,
        max_rows: usize,
    ) -> Result<Self, FlightError> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "floe");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, true);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        Ok(Self {
            queries,
            token,
            running,
            max_rows,
            prepared: Mutex::new(HashMap::new()),
            sql_info: info.build()?,
        })
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(given) if super::same(given.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(Status::unauthenticated(
                "send the configured token as the header `authorization: Bearer <token>`",
            )),
        }
    }

    fn statement(&self, handle: &[u8]) -> Result<Prepared, Status> {
        let handle = String::from_utf8_lossy(handle).to_string();
        self.prepared
            .lock()
            .map_err(|_| Status::internal("the prepared statements are unavailable"))?
            .get(&handle)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no prepared statement {handle:?} (closed?)")))
    }

    /// Runs `frame` as a stream of Flight data under the limits.
    async fn stream(&self, frame: DataFrame) -> Result<Response<DoGetStream>, Status> {
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is stopping"))?;
        let limits = self.queries.limits();
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame
            .execute_stream()
            .await
            .map_err(|e| status(ReadOnlyQueries::running_error(e)))?;
        let limited = Limited::new(batches, self.max_rows, limits.timeout, permit);
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(limited)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(encoded)))
    }

    /// The FlightInfo of a metadata command: its result's schema, and the
    /// command itself as the ticket to fetch it with.
    fn command_info(
        &self,
        schema: &Schema,
        command: &impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        self.info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    fn info(
        &self,
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

/// A batch stream that ends with an error past `max_rows` rows or past its
/// deadline, and holds a query slot while it lives.
struct Limited {
    inner: Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>,
}

impl Limited {
    fn new(
        batches: datafusion::physical_plan::SendableRecordBatchStream,
        max_rows: usize,
        timeout: Duration,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        let deadline = tokio::time::Instant::now() + timeout;
        // the state: the plan's batches, the query slot, rows sent, ended
        let inner = futures::stream::unfold(
            (batches, permit, 0usize, false),
            move |(mut batches, permit, mut sent, done)| async move {
                if done {
                    return None;
                }
                let next = match tokio::time::timeout_at(deadline, batches.next()).await {
                    Err(_) => Some(Err(external(QueryError::Timeout(timeout)))),
                    Ok(None) => None,
                    Ok(Some(Err(e))) => Some(Err(external(ReadOnlyQueries::running_error(e)))),
                    Ok(Some(Ok(batch))) => Some(Ok(batch)),
                };
                match next {
                    None => None,
                    Some(Err(e)) => Some((Err(e), (batches, permit, sent, true))),
                    Some(Ok(batch)) => {
                        sent += batch.num_rows();
                        if sent > max_rows {
                            let e = FlightError::ExternalError(
                                format!("the result is over [serve] flight_max_rows = {max_rows} rows: narrow the query or add a LIMIT").into(),
                            );
                            return Some((Err(e), (batches, permit, sent, true)));
                        }
                        Some((Ok(batch), (batches, permit, sent, false)))
                    }
                }
            },
        );
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Limited {
    type Item = Result<RecordBatch, FlightError>;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

fn external(e: QueryError) -> FlightError {
    FlightError::Tonic(Box::new(status(e)))
}

/// A query's error as the gRPC status that says whose fault it was.
fn status(e: QueryError) -> Status {
    let message = crate::secrets::redact(&e.to_string()).into_owned();
    match e {
        QueryError::BadRequest(_) => Status::invalid_argument(message),
        QueryError::NotFound(_) => Status::not_found(message),
        QueryError::TooLarge(..) | QueryError::OutOfMemory(_) => {
            Status::resource_exhausted(message)
        }
        QueryError::Timeout(_) => Status::deadline_exceeded(message),
        QueryError::Failed(_) => Status::internal(message),
    }
}

/// The parameters bound to a prepared statement: the first row of the
/// batch the client sent, one value per column.
fn parameters(batch: &RecordBatch) -> Result<Vec<ScalarValue>, Status> {
    if batch.num_rows() != 1 {
        return Err(Status::invalid_argument(format!(
            "bind one row of parameters ({} sent)",
            batch.num_rows()
        )));
    }
    batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| Status::invalid_argument(format!("a parameter cannot be read: {e}")))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let frame = self
            .queries
            .plan(&query.query, None)
            .await
            .map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        self.info(
            frame.schema().as_arrow(),
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a statement"))?;
        let frame = self.queries.plan(&sql, None).await.map_err(status)?;
        self.stream(frame).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(&request)?;
        let frame = self
            .queries
            .plan(&query.query, None)
            .await
            .map_err(status)?;
        let options = arrow::ipc::writer::IpcWriteOptions::default();
        let schema_bytes = |schema: &Schema| -> Result<bytes::Bytes, Status> {
            let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options)
                .try_into()
                .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
            Ok(bytes)
        };
        // the parameters' types, in placeholder order ($1, $2, ...)
        let mut types: Vec<(String, Option<arrow::datatypes::DataType>)> = frame
            .logical_plan()
            .get_parameter_types()
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .into_iter()
            .collect();
        types.sort_by_key(|(name, _)| {
            name.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let parameters = Schema::new(
            types
                .into_iter()
                .map(|(name, t)| {
                    arrow::datatypes::Field::new(
                        name,
                        t.unwrap_or(arrow::datatypes::DataType::Utf8),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let handle = uuid::Uuid::new_v4().to_string();
        {
            let mut prepared = self
                .prepared
                .lock()
                .map_err(|_| Status::internal("the prepared statements are unavailable"))?;
            if prepared.len() >= MAX_PREPARED {
                return Err(Status::resource_exhausted(format!(
                    "{MAX_PREPARED} prepared statements are open: close some"
                )));
            }
            prepared.insert(
                handle.clone(),
                Prepared {
                    sql: query.query,
                    params: None,
                },
            );
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_bytes(frame.schema().as_arrow())?,
            parameter_schema: schema_bytes(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(&request)?;
        let statement = self.statement(&query.prepared_statement_handle)?;
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
                request.into_inner().map_err(FlightError::from),
            )
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("the parameters cannot be read: {e}")))?;
        let Some(batch) = batches.last() else {
            return Err(Status::invalid_argument("no parameters were sent"));
        };
        let params = parameters(batch)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared
            .lock()
            .map_err(|_| Status::internal("the prepared statements are unavailable"))?
            .insert(
                handle,
                Prepared {
                    params: Some(params),
                    ..statement
                },
            );
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let statement = self.statement(&query.prepared_statement_handle)?;
        let frame = self
            .queries
            .plan(&statement.sql, statement.params)
            .await
            .map_err(status)?;
        self.info(
            frame.schema().as_arrow(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request)?;
        let statement = self.statement(&query.prepared_statement_handle)?;
        let frame = self
            .queries
            .plan(&statement.sql, statement.params)
            .await
            .map_err(status)?;
        self.stream(frame).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared
            .lock()
            .map_err(|_| Status::internal("the prepared statements are unavailable"))?
            .remove(&handle);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(&schema, &query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut builder = query.into_builder();
        builder.append(analytics::LAKE_CATALOG);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(&schema, &query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request)?;
        let tables = self.queries.table_schemas().await.map_err(status)?;
        let mut namespaces: Vec<&String> = tables.iter().map(|(ns, _, _)| ns).collect();
        namespaces.dedup();
        let mut builder = query.into_builder();
        for namespace in namespaces {
            builder.append(analytics::LAKE_CATALOG, namespace);
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(&schema, &query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request)?;
        let tables = self.queries.table_schemas().await.map_err(status)?;
        let mut builder = query.into_builder();
        for (namespace, table, schema) in &tables {
            builder
                .append(analytics::LAKE_CATALOG, namespace, table, "TABLE", schema)
                .map_err(Status::from)?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.command_info(schema.as_ref(), &query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request)?;
        let builder = query.into_builder(&self.sql_info);
        one_batch(builder.schema(), builder.build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn one_batch(
    schema: arrow::datatypes::SchemaRef,
    batch: Result<RecordBatch, FlightError>,
) -> Result<Response<DoGetStream>, Status> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { batch }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}
