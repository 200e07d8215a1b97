//! What every paged listing shares: how many items a page may hold.

use crate::error::{ApiError, ApiResult};

/// The most items a page of any listing holds.
const MAX_LIMIT: u32 = 1000;

/// A listing's `limit`, or `default` when the request names none: 1 to [`MAX_LIMIT`], else 422.
pub fn page_limit(limit: Option<u32>, default: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::unprocessable(format!("`limit` must be an integer from 1 to {MAX_LIMIT}"))),
    }
}
