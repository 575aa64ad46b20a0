//! Limits on GraphQL work that async-graphql's depth and complexity limits do not cover:
//! the size of a document once its fragments are expanded, and a time budget per
//! operation.
//!
//! The depth and complexity limits are checked by walking the document with every
//! fragment spread expanded in place, so a few hundred bytes of nested spreads
//! (`fragment G1 { ...G0 ...G0 }`, `fragment G2 { ...G1 ...G1 }`, …) cost 2ⁿ steps
//! before either limit can refuse them. The expanded size is computed here without
//! expanding anything — each fragment's size is computed once and reused — and checked
//! before async-graphql walks the document at all.
//!
//! Both entry points call [`admit`] (`POST /graphql` and the websocket's
//! [`super::SubscriptionExecutor`]) rather than a schema `Extension`: any extension
//! switches async-graphql to its instrumented resolver path for every field (a boxed
//! future per field, two `String`s per list item), which made a full introspection
//! query half again as slow.

use crate::api::ApiError;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerError};
use std::collections::HashMap;
use std::time::Duration;

/// Selections a document may hold once its fragment spreads are expanded: every field,
/// fragment spread and inline fragment counts one, across all its operations. Ten
/// times the complexity limit leaves room for real consoles' fragments, and bounds
/// the work of every later walk over the document (validation, limits, execution).
pub const MAX_EXPANDED_SELECTIONS: usize = 5_000;

/// Time one query or mutation may run before it is abandoned with an error. A second
/// line of defence: only what the size limit lets through gets here.
pub const OPERATION_BUDGET: Duration = Duration::from_secs(10);

/// Selection sets nested deeper than this (fields, spreads and inline fragments each
/// add a level) are refused before counting goes further. async-graphql refuses
/// documents nested beyond 32 anyway; this keeps our own walk off a deep stack when
/// spreads chain many fragments.
const MAX_NESTING: usize = 64;

/// Why a document or an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "The document is too large: more than {limit} selections once its fragments are expanded"
    )]
    TooLarge { limit: usize },
    #[error("The document nests selections more than {limit} levels deep")]
    TooDeep { limit: usize },
    #[error("Fragment \"{0}\" spreads itself, directly or through other fragments")]
    FragmentCycle(String),
    #[error("The operation did not finish within {} seconds and was stopped", .0.as_secs())]
    Timeout(Duration),
}

impl LimitError {
    /// The error for the whole document: no location in it.
    fn into_server_error(self) -> ServerError {
        let error = ApiError::from(self).into_graphql();
        let mut server_error = ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }
}

/// The number of selections in `doc`'s operations with every fragment spread expanded,
/// or why it exceeds `limit`. Unknown fragments count as empty (validation reports
/// them). Each fragment's own size is computed once, so the cost is linear in the
/// length of the document whatever its expanded size.
pub fn expanded_size(doc: &ExecutableDocument, limit: usize) -> Result<usize, LimitError> {
    let mut walk = Expansion::new(doc, limit);
    let mut total = 0usize;
    for (_, operation) in doc.operations.iter() {
        let size = walk.selection_set(&operation.node.selection_set.node, 0)?;
        total = walk.add(total, size)?;
    }
    Ok(total)
}

/// A fragment's size: being computed (a spread of it now is a cycle), or known.
#[derive(Clone, Copy)]
enum Memo {
    Expanding,
    Known(usize),
}

struct Expansion<'a> {
    doc: &'a ExecutableDocument,
    limit: usize,
    fragments: HashMap<&'a str, Memo>,
    /// Fragments whose selection sets were walked (each at most once).
    #[cfg(test)]
    walked: usize,
}

impl<'a> Expansion<'a> {
    fn new(doc: &'a ExecutableDocument, limit: usize) -> Self {
        Self {
            doc,
            limit,
            fragments: HashMap::with_capacity(doc.fragments.len()),
            #[cfg(test)]
            walked: 0,
        }
    }

    fn add(&self, total: usize, size: usize) -> Result<usize, LimitError> {
        let total = total.saturating_add(size);
        if total > self.limit {
            return Err(LimitError::TooLarge { limit: self.limit });
        }
        Ok(total)
    }

    fn selection_set(&mut self, set: &'a SelectionSet, depth: usize) -> Result<usize, LimitError> {
        if set.items.is_empty() {
            return Ok(0);
        }
        if depth >= MAX_NESTING {
            return Err(LimitError::TooDeep { limit: MAX_NESTING });
        }
        let mut total = 0usize;
        for selection in &set.items {
            let inner = match &selection.node {
                Selection::Field(field) => {
                    self.selection_set(&field.node.selection_set.node, depth + 1)?
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node, depth + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), depth + 1)?
                }
            };
            total = self.add(total, inner.saturating_add(1))?;
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str, depth: usize) -> Result<usize, LimitError> {
        match self.fragments.get(name) {
            Some(Memo::Known(size)) => return Ok(*size),
            Some(Memo::Expanding) => return Err(LimitError::FragmentCycle(name.to_owned())),
            None => {}
        }
        let Some((key, fragment)) = self.doc.fragments.get_key_value(name) else {
            return Ok(0);
        };
        self.fragments.insert(key.as_str(), Memo::Expanding);
        #[cfg(test)]
        {
            self.walked += 1;
        }
        let size = self.selection_set(&fragment.node.selection_set.node, depth)?;
        self.fragments.insert(key.as_str(), Memo::Known(size));
        Ok(size)
    }
}

/// What [`admit`] learnt about a request's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The type of the operation the request selects; `None` when its name matches
    /// none, which the schema then reports.
    pub operation: Option<OperationType>,
    /// A query selecting only `__schema`, `__type` and `__typename` at its root.
    pub introspection: bool,
}

/// Parses the request's document (kept in the request: async-graphql does not parse it
/// again) and checks its expanded size, before any of async-graphql's own checks.
pub fn admit(request: &mut Request) -> Result<Admitted, ServerError> {
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query()?;
    if let Err(refused) = expanded_size(document, MAX_EXPANDED_SELECTIONS) {
        tracing::info!(reason = %refused, "GraphQL document refused");
        return Err(refused.into_server_error());
    }
    let operation = match operation_name.as_deref() {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => document.operations.iter().next(),
    };
    Ok(match operation {
        Some((_, operation)) => Admitted {
            operation: Some(operation.node.ty),
            introspection: operation.node.ty == OperationType::Query
                && only_introspection(document, &operation.node.selection_set.node),
        },
        None => Admitted {
            operation: None,
            introspection: false,
        },
    })
}

/// Whether a root selection set holds only introspection fields (through fragments;
/// [`expanded_size`] has refused cycles already).
fn only_introspection(doc: &ExecutableDocument, set: &SelectionSet) -> bool {
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => matches!(
            field.node.name.node.as_str(),
            "__schema" | "__type" | "__typename"
        ),
        Selection::InlineFragment(inline) => {
            only_introspection(doc, &inline.node.selection_set.node)
        }
        Selection::FragmentSpread(spread) => doc
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|fragment| only_introspection(doc, &fragment.node.selection_set.node)),
    })
}

/// Runs a query or a mutation within [`OPERATION_BUDGET`]. Subscriptions wait for
/// events as long as they live; the size bound limits the work of each event.
pub async fn within_budget(work: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(OPERATION_BUDGET, work).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("GraphQL operation stopped at its time budget");
            Response::from_errors(vec![
                LimitError::Timeout(OPERATION_BUDGET).into_server_error(),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    /// `fragment G1 on QueryRoot { ...G0 ...G0 }` … `{ ...G<levels> }`: 2^levels
    /// copies of `__typename` once expanded.
    fn fragment_bomb(levels: usize) -> String {
        let mut doc = String::from("query { ...G");
        doc.push_str(&levels.to_string());
        doc.push_str(" }\nfragment G0 on QueryRoot { __typename }\n");
        for level in 1..=levels {
            let below = level - 1;
            doc.push_str(&format!(
                "fragment G{level} on QueryRoot {{ ...G{below} ...G{below} }}\n"
            ));
        }
        doc
    }

    fn size(query: &str) -> Result<usize, LimitError> {
        expanded_size(&parse_query(query).unwrap(), MAX_EXPANDED_SELECTIONS)
    }

    #[test]
    fn the_fragment_bomb_is_refused_and_each_fragment_is_walked_once() {
        let bomb = fragment_bomb(25);
        assert!(bomb.len() < 1500, "a small document: {} bytes", bomb.len());
        assert_eq!(
            size(&bomb),
            Err(LimitError::TooLarge {
                limit: MAX_EXPANDED_SELECTIONS
            })
        );

        // Without a bound the exact size comes out, from one walk per fragment.
        let doc = parse_query(&bomb).unwrap();
        let mut walk = Expansion::new(&doc, usize::MAX);
        let (_, operation) = doc.operations.iter().next().unwrap();
        let total = walk
            .selection_set(&operation.node.selection_set.node, 0)
            .unwrap();
        // Level n holds 2 spreads of level n-1: s(0) = 1, s(n) = 2 + 2·s(n-1), plus the
        // operation's own spread.
        let mut expected = 1usize;
        for _ in 1..=25 {
            expected = 2 + 2 * expected;
        }
        assert_eq!(total, expected + 1);
        assert!(total > 1 << 25);
        assert_eq!(walk.walked, 26, "G0 to G25, once each");
    }

    #[test]
    fn ordinary_documents_are_counted_with_spreads_and_inline_fragments() {
        assert_eq!(size("{ __typename }"), Ok(1));
        assert_eq!(size("{ a { b c } d }"), Ok(4));
        assert_eq!(
            size("query { ...F ...F } fragment F on QueryRoot { a { b } }"),
            Ok(6)
        );
        assert_eq!(size("{ ... on QueryRoot { a b } }"), Ok(3));
        // Every operation counts; unknown fragments are left to validation.
        assert_eq!(size("query A { a } query B { b c }"), Ok(3));
        assert_eq!(size("{ ...Nowhere }"), Ok(1));
    }

    #[test]
    fn the_bound_is_inclusive() {
        let fields = |n: usize| format!("{{ {} }}", "a ".repeat(n));
        assert_eq!(
            size(&fields(MAX_EXPANDED_SELECTIONS)),
            Ok(MAX_EXPANDED_SELECTIONS)
        );
        assert!(matches!(
            size(&fields(MAX_EXPANDED_SELECTIONS + 1)),
            Err(LimitError::TooLarge { .. })
        ));
    }

    #[test]
    fn cycles_and_deep_nesting_are_refused_without_recursing_forever() {
        assert_eq!(
            size("{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { ...A }"),
            Err(LimitError::FragmentCycle("A".into()))
        );
        // The parser refuses selection sets nested past 64 within one definition;
        // spreads chain definitions.
        let chain: String = (0..200)
            .map(|i| format!("fragment F{i} on QueryRoot {{ ...F{} }}\n", i + 1))
            .collect();
        let doc = format!("{{ ...F0 }}\n{chain}fragment F200 on QueryRoot {{ a }}");
        assert_eq!(size(&doc), Err(LimitError::TooDeep { limit: MAX_NESTING }));
    }

    /// The introspection query GraphiQL sends on load must fit well within the bound.
    #[test]
    fn a_full_introspection_query_fits() {
        let size = size(INTROSPECTION).unwrap();
        assert!(size < MAX_EXPANDED_SELECTIONS / 5, "{size}");
    }

    /// graphql-js `getIntrospectionQuery()` (as GraphiQL 3 sends it).
    const INTROSPECTION: &str = r"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types { ...FullType }
        directives { name description locations args { ...InputValue } }
      }
    }
    fragment FullType on __Type {
      kind name description
      fields(includeDeprecated: true) {
        name description args { ...InputValue } type { ...TypeRef }
        isDeprecated deprecationReason
      }
      inputFields { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue {
      name description type { ...TypeRef } defaultValue
    }
    fragment TypeRef on __Type {
      kind name
      ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name } } } } } } } } }
    }";

    #[tokio::test(start_paused = true)]
    async fn an_operation_past_its_budget_is_stopped_with_a_clear_error() {
        // Time is paused: the runtime jumps to the deadline once nothing else can run.
        let response = within_budget(std::future::pending()).await;
        assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
        let error = &response.errors[0];
        assert_eq!(
            error.message,
            "The operation did not finish within 10 seconds and was stopped"
        );
        let code = error.extensions.as_ref().and_then(|e| e.get("code"));
        assert_eq!(code, Some(&async_graphql::Value::from("timeout")));
        assert!(error.locations.is_empty());

        let done = within_budget(std::future::ready(Response::new(
            async_graphql::Value::from(true),
        )))
        .await;
        assert!(done.errors.is_empty());
    }

    #[test]
    fn admit_names_the_selected_operation_and_refuses_bombs_and_syntax_errors() {
        let admitted = |query: &str, name: Option<&str>| {
            let mut request = Request::new(query);
            if let Some(name) = name {
                request = request.operation_name(name);
            }
            admit(&mut request).map_err(|e| e.message)
        };
        let both = "query A { a } subscription B { b }";
        assert_eq!(
            admitted(both, Some("B")),
            Ok(Admitted {
                operation: Some(OperationType::Subscription),
                introspection: false
            })
        );
        assert_eq!(
            admitted("query A { a }", Some("C")),
            Ok(Admitted {
                operation: None,
                introspection: false
            })
        );
        let refused = admitted(&fragment_bomb(25), None).unwrap_err();
        assert!(refused.contains("too large"), "{refused}");
        assert!(admitted("{ unclosed", None).is_err());
    }

    #[test]
    fn introspection_only_queries_are_told_apart() {
        let introspection = |query: &str| {
            admit(&mut Request::new(query))
                .map(|a| a.introspection)
                .unwrap_or_default()
        };
        assert!(introspection(INTROSPECTION));
        assert!(introspection(
            "{ __typename ... on QueryRoot { __type(name: \"X\") { name } } }"
        ));
        assert!(!introspection(
            "{ __schema { queryType { name } } extensions { id } }"
        ));
        assert!(!introspection(
            "{ ...F } fragment F on QueryRoot { __typename extensions { id } }"
        ));
        assert!(!introspection("{ ...Unknown }"));
        assert!(!introspection("mutation { __typename }"));
    }
}
