//! `POST /graphql`: the credential first, then the body, then the executor.
//!
//! The order is the contract: without a valid credential the answer is 401 before the
//! body is even read; the body is read under the 64 KiB cap (a 413 in GraphQL's error
//! shape); only then does async-graphql-axum's [`GraphQLRequest`] parse it (JSON or
//! multipart; a batch is refused), and the [`SubscriptionExecutor`] admits the document
//! ([`super::limits`]) before anything runs. The answer is its [`GraphQLResponse`].
//!
//! The body is buffered before `GraphQLRequest` sees it because that extractor reads
//! the request body as a raw stream, past axum's `DefaultBodyLimit`: buffered with
//! axum's `Bytes` first, the cap holds and an oversized body is told apart from a
//! broken one.

use super::{GraphqlState, SubscriptionExecutor};
use crate::api::ApiError;
use crate::api::extract::Auth;
use crate::auth::Principal;
use crate::service::Services;
use async_graphql::{Executor, ParseRequestError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn graphql_http(
    State(state): State<GraphqlState>,
    Caller(principal): Caller,
    Document(request): Document,
) -> GraphQLResponse {
    let executor: &SubscriptionExecutor = &state.executor;
    executor.execute(request.data(principal)).await.into()
}

/// A refusal in GraphQL's shape (`{"errors":[…]}`, `data` null) with its HTTP status.
pub struct GraphqlRefusal(ApiError);

impl IntoResponse for GraphqlRefusal {
    fn into_response(self) -> Response {
        let status = self.0.status;
        let response = async_graphql::Response::from_errors(vec![
            self.0
                .into_graphql()
                .into_server_error(async_graphql::Pos::default()),
        ]);
        (status, GraphQLResponse::from(response)).into_response()
    }
}

impl From<ParseRequestError> for GraphqlRefusal {
    fn from(e: ParseRequestError) -> Self {
        GraphqlRefusal(match e {
            ParseRequestError::PayloadTooLarge => too_large(),
            e => ApiError::bad_request(format!("Body must be a GraphQL request object: {e}")),
        })
    }
}

fn too_large() -> ApiError {
    ApiError::payload_too_large(crate::api::MAX_BODY_BYTES)
}

/// The caller, from the request's headers; refused (401 or 403) before the body.
pub struct Caller(Principal);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Services>: FromRef<S>,
{
    type Rejection = GraphqlRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, GraphqlRefusal> {
        Auth::from_request_parts(parts, state)
            .await
            .map(|Auth(principal)| Caller(principal))
            .map_err(GraphqlRefusal)
    }
}

/// The GraphQL request in the body (64 KiB at most).
pub struct Document(async_graphql::Request);

impl<S: Send + Sync> FromRequest<S> for Document {
    type Rejection = GraphqlRefusal;

    async fn from_request(req: Request, state: &S) -> Result<Self, GraphqlRefusal> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| {
                GraphqlRefusal(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request("Could not read the request body")
                })
            })?;
        let buffered = Request::from_parts(parts, axum::body::Body::from(bytes));
        let request = GraphQLRequest::<GraphqlRefusal>::from_request(buffered, state).await?;
        Ok(Document(request.into_inner()))
    }
}
