//! The one shape of client input to an update: each field absent, `null` or a value.
//! REST bodies deserialize into it (see `api::rest::body`), GraphQL inputs convert
//! from `MaybeUndefined`.

use crate::domain::ValidationError;

/// One field of client input: absent (leave alone), explicit `null` (clear), or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    /// Parses the value, if there is one; absent and `null` stay as they are.
    pub fn try_map<U, E>(self, parse: impl FnOnce(T) -> Result<U, E>) -> Result<Field<U>, E> {
        Ok(match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Value(v) => Field::Value(parse(v)?),
        })
    }

    /// For fields that cannot be cleared: `null` is an error, absent is `None`.
    pub(super) fn required_or_absent(
        self,
        field: &'static str,
    ) -> Result<Option<T>, ValidationError> {
        match self {
            Field::Absent => Ok(None),
            Field::Null => Err(ValidationError::new(field, "cannot be null")),
            Field::Value(v) => Ok(Some(v)),
        }
    }

    /// For nullable fields: `None` leaves alone, `Some(None)` clears.
    pub(super) fn nullable<U>(
        self,
        parse: impl FnOnce(T) -> Result<U, ValidationError>,
    ) -> Result<Option<Option<U>>, ValidationError> {
        match self {
            Field::Absent => Ok(None),
            Field::Null => Ok(Some(None)),
            Field::Value(v) => parse(v).map(|u| Some(Some(u))),
        }
    }
}
