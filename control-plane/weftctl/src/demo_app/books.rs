//! The demo services' content: a book catalogue small enough to read in a terminal. Pure
//! functions from (id, version, what the peers answered) to JSON, so the answers are unit
//! tested without sockets.

use http::{HeaderMap, HeaderName};
use serde_json::{json, Value};

/// Headers an application must copy from its inbound request to its outbound calls so the
/// mesh can route by user (`end-user`) and stitch traces together (W3C and B3).
const PROPAGATED: &[&str] = &[
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
];
const PROPAGATED_PREFIX: &str = "x-b3-";

pub fn propagated_headers(inbound: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in inbound {
        if is_propagated(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn is_propagated(name: &HeaderName) -> bool {
    // HeaderName is always lower case, so plain comparisons are enough.
    let name = name.as_str();
    PROPAGATED.contains(&name) || name.starts_with(PROPAGATED_PREFIX)
}

struct Book {
    title: &'static str,
    author: &'static str,
    year: u32,
    pages: u32,
    isbn_10: &'static str,
}

const BOOKS: &[Book] = &[
    Book {
        title: "The Comedy of Errors",
        author: "William Shakespeare",
        year: 1595,
        pages: 200,
        isbn_10: "1234567890",
    },
    Book {
        title: "A Midsummer Night's Dream",
        author: "William Shakespeare",
        year: 1600,
        pages: 180,
        isbn_10: "2345678901",
    },
];

/// Any id gets an answer (ids wrap around the catalogue) so users can try `/details/7`.
fn book(id: u64) -> &'static Book {
    let index = (id % BOOKS.len() as u64) as usize;
    &BOOKS[index]
}

pub fn title(id: u64) -> &'static str {
    book(id).title
}

pub fn details(id: u64) -> Value {
    let b = book(id);
    json!({
        "id": id,
        "title": b.title,
        "author": b.author,
        "year": b.year,
        "type": "paperback",
        "pages": b.pages,
        "language": "English",
        "ISBN-10": b.isbn_10,
    })
}

const REVIEWS: &[(&str, &str)] = &[
    (
        "Reviewer1",
        "A quick read that keeps two sets of twins and a whole town confused.",
    ),
    ("Reviewer2", "Funny on the page and even better read aloud."),
];

/// Star ratings per reviewer, as the ratings service answers them.
pub fn ratings(id: u64) -> Value {
    // Vary with the id so two books do not look identical.
    let first = 5 - (id % 2);
    json!({ "id": id, "ratings": { "Reviewer1": first, "Reviewer2": 4 } })
}

/// The star colour a reviews version shows, or None for a version that shows no ratings.
/// v1 shows none, v2 black and v3 red, as in Istio's BookInfo, so a user sees routing at a glance.
pub fn star_color(version: &str) -> Option<&'static str> {
    match version {
        "v2" => Some("black"),
        "v3" => Some("red"),
        _ => None,
    }
}

/// The reviews list. `ratings` is what the ratings service answered: `Ok(body)` or `Err(error
/// object)`; it is only consulted when `color` is Some.
pub fn reviews(id: u64, color: Option<&str>, ratings: Option<&Result<Value, Value>>) -> Value {
    let list: Vec<Value> = REVIEWS
        .iter()
        .map(|(reviewer, text)| {
            let mut review = json!({ "reviewer": reviewer, "text": text });
            if let (Some(color), Some(ratings)) = (color, ratings) {
                review["rating"] = match ratings {
                    Ok(body) => match body["ratings"][reviewer].as_u64() {
                        Some(stars) => json!({ "stars": stars, "color": color }),
                        None => json!({ "error": "no rating for this reviewer" }),
                    },
                    Err(_) => json!({ "error": "ratings service is currently unavailable" }),
                };
            }
            review
        })
        .collect();
    json!({ "id": id, "reviews": list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn propagates_user_and_trace_headers_only() {
        let mut inbound = HeaderMap::new();
        for name in [
            "end-user",
            "x-request-id",
            "traceparent",
            "tracestate",
            "b3",
            "x-b3-traceid",
            "x-b3-sampled",
            "cookie",
            "host",
            "user-agent",
        ] {
            inbound.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
        }
        let out = propagated_headers(&inbound);
        assert_eq!(out.len(), 7);
        assert!(out.contains_key("x-b3-sampled"));
        assert!(!out.contains_key("cookie"));
        assert!(!out.contains_key("host"));
    }

    #[test]
    fn reviews_show_stars_in_the_version_color() {
        let rated = Ok(ratings(0));
        let v2 = reviews(0, star_color("v2"), Some(&rated));
        assert_eq!(v2["reviews"][0]["rating"]["color"], "black");
        assert_eq!(v2["reviews"][0]["rating"]["stars"], 5);
        let v3 = reviews(0, star_color("v3"), Some(&rated));
        assert_eq!(v3["reviews"][1]["rating"]["color"], "red");
        let v1 = reviews(0, star_color("v1"), None);
        assert!(v1["reviews"][0].get("rating").is_none());
    }

    #[test]
    fn failed_ratings_call_is_reported_per_review() {
        let failed = Err(json!({ "error": "timeout" }));
        let v2 = reviews(0, star_color("v2"), Some(&failed));
        assert!(v2["reviews"][0]["rating"]["error"].is_string());
    }

    #[test]
    fn any_id_has_details() {
        assert_eq!(details(0)["title"], "The Comedy of Errors");
        assert_eq!(details(3)["id"], 3);
    }
}
