//! `POST /publish`: check a request, publish its events, and write the
//! answer. The one endpoint on the hot path, so it is answered by the
//! guard's connection thread (`http-conn-N`) that read the request, not by
//! tiny_http: one thread between the client and the broadcaster instead of
//! four (guard, tiny_http's reader, a worker, the guard's responder).
//!
//! The guard has already bounded the request (head, body size, time) and
//! read the body whole. Here: the hub is not shutting down (else 503), the
//! publish key (else 401), the body is JSON of one event or an array of
//! them, each with a valid channel (else 400 and nothing is published).
//! Several requests a client pipelined, already read together, are
//! published with one command ([`PublishRoute::publish`]), so the
//! broadcaster takes them in one round and wakes each subscriber once.
//! Answers keep the shape of every HTTP endpoint: `{"seq":…,"delivered":…}`
//! (an array of them for an array), or `{"error":{"code":…,"message":…}}`.
//!
//! Threads: the guard's `http-conn-N`; it talks to the broadcaster through
//! a [`HubHandle`], like any embedding application.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::auth::{bearer_token, constant_time_eq};
use crate::handle::HubHandle;
use crate::protocol::{is_valid_channel_name, ErrorCode};

/// What `POST /publish` needs: the hub, the key, the body limit.
#[derive(Debug, Clone)]
pub(crate) struct PublishRoute {
    hub: HubHandle,
    publish_key: Option<String>,
    max_body: usize,
    /// The most events of several requests published with one command:
    /// half of `--queue-size`, so that what one command queues for a
    /// subscriber that reads stays well inside its queue (one request alone
    /// is published whole, as before).
    group_events: usize,
}

/// One checked request's events: one event, or an array.
#[derive(Debug)]
pub(crate) struct Events {
    events: Vec<(String, Value)>,
    is_array: bool,
}

/// An answer, before it is framed for the client.
#[derive(Debug)]
pub(crate) struct Answer {
    status: u16,
    body: String,
    /// A 401 says which scheme it wants.
    challenge: bool,
}

impl PublishRoute {
    pub(crate) fn new(
        hub: HubHandle,
        publish_key: Option<String>,
        max_body: usize,
        queue_size: usize,
    ) -> Self {
        PublishRoute {
            hub,
            publish_key,
            max_body,
            group_events: (queue_size / 2).max(1),
        }
    }

    /// Check one request: its `Authorization` header values and its body.
    /// The events to publish, or the refusal to answer with.
    pub(crate) fn check(&self, authorization: &[Vec<u8>], body: &[u8]) -> Result<Events, Answer> {
        if self.hub.is_shutting_down() {
            return Err(Answer::error(
                503,
                "shutting_down",
                "the hub is shutting down",
            ));
        }
        if !self.authorized(authorization) {
            let mut answer = Answer::error(
                401,
                "unauthorized",
                "send Authorization: Bearer <publish key>",
            );
            answer.challenge = true;
            return Err(answer);
        }
        if body.len() > self.max_body {
            let message = format!("body over {} bytes", self.max_body);
            return Err(Answer::error(413, "too_large", &message));
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Answer::error(
                400,
                ErrorCode::BadJson.as_str(),
                &format!("invalid JSON: {e}"),
            )
        })?;
        // Validate everything before publishing anything: a bad item in an
        // array publishes nothing.
        match value {
            Value::Array(items) => {
                let mut events = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    let event = publish_item(item).map_err(|(code, message)| {
                        Answer::error(400, code.as_str(), &format!("item {index}: {message}"))
                    })?;
                    events.push(event);
                }
                Ok(Events {
                    events,
                    is_array: true,
                })
            }
            item => {
                let event = publish_item(item)
                    .map_err(|(code, message)| Answer::error(400, code.as_str(), &message))?;
                Ok(Events {
                    events: vec![event],
                    is_array: false,
                })
            }
        }
    }

    /// Publish the events of several checked requests, in order, with as
    /// few commands as `group_events` allows (one,
    /// for a few small requests), and answer each.
    pub(crate) fn publish(&self, requests: Vec<Events>) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(requests.len());
        let mut group = Vec::new();
        let mut events = 0;
        for request in requests {
            if !group.is_empty() && events + request.events.len() > self.group_events {
                answers.extend(self.publish_group(std::mem::take(&mut group)));
                events = 0;
            }
            events += request.events.len();
            group.push(request);
        }
        answers.extend(self.publish_group(group));
        answers
    }

    /// Publish the events of `requests` with one command.
    fn publish_group(&self, requests: Vec<Events>) -> Vec<Answer> {
        if requests.is_empty() {
            return Vec::new();
        }
        let counts: Vec<(usize, bool)> = requests
            .iter()
            .map(|request| (request.events.len(), request.is_array))
            .collect();
        let all: Vec<(String, Value)> = requests
            .into_iter()
            .flat_map(|request| request.events)
            .collect();
        let published = match self.hub.publish_all(all) {
            Ok(published) => published,
            Err(_) => {
                return counts
                    .iter()
                    .map(|_| Answer::error(503, "shutting_down", "the hub is shutting down"))
                    .collect()
            }
        };
        let mut published = published.into_iter();
        counts
            .into_iter()
            .map(|(count, is_array)| {
                let mut answers: Vec<Value> = published
                    .by_ref()
                    .take(count)
                    .map(|p| json!({"seq": p.seq.0, "delivered": p.delivered}))
                    .collect();
                let body = match answers.pop() {
                    Some(single) if !is_array => single,
                    last => {
                        answers.extend(last);
                        Value::Array(answers)
                    }
                };
                Answer::json(200, &body)
            })
            .collect()
    }

    /// True if no publish key is set, or one of the values presents it.
    fn authorized(&self, authorization: &[Vec<u8>]) -> bool {
        let Some(key) = &self.publish_key else {
            return true;
        };
        authorization
            .iter()
            .filter_map(|value| std::str::from_utf8(value).ok())
            .filter_map(bearer_token)
            .any(|token| constant_time_eq(token.as_bytes(), key.as_bytes()))
    }
}

impl Answer {
    fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            body: body.to_string(),
            challenge: false,
        }
    }

    /// The one error shape: `{"error":{"code":…,"message":…}}`.
    fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    }

    /// Append the whole HTTP/1.1 response to `out`, with the `Connection`
    /// header `connection` (empty for none).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>, connection: &[u8]) {
        use std::io::Write;
        let reason = match self.status {
            200 => "OK",
            status => crate::request_head::reason_phrase(status),
        };
        let _ = write!(
            out,
            "HTTP/1.1 {} {reason}\r\nDate: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.status,
            http_date(SystemTime::now()),
            self.body.len()
        );
        if self.challenge {
            out.extend_from_slice(b"WWW-Authenticate: Bearer\r\n");
        }
        out.extend_from_slice(connection);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body.as_bytes());
    }

    /// The HTTP status.
    #[cfg(test)]
    fn status(&self) -> u16 {
        self.status
    }
}

/// One `{"channel":…,"data":…}` object, checked.
fn publish_item(item: Value) -> Result<(String, Value), (ErrorCode, String)> {
    let Value::Object(mut object) = item else {
        return Err((
            ErrorCode::BadMessage,
            "expected {\"channel\":…,\"data\":…}".into(),
        ));
    };
    let channel = match object.remove("channel") {
        Some(Value::String(channel)) => channel,
        Some(_) => return Err((ErrorCode::BadMessage, "`channel` must be a string".into())),
        None => return Err((ErrorCode::BadMessage, "missing `channel`".into())),
    };
    let Some(data) = object.remove("data") else {
        return Err((ErrorCode::BadMessage, "missing `data`".into()));
    };
    if !is_valid_channel_name(&channel) {
        return Err((
            ErrorCode::BadChannel,
            "invalid channel name: use 1-128 of A-Z a-z 0-9 _ . : -".into(),
        ));
    }
    Ok((channel, data))
}

/// An HTTP date (RFC 9110, IMF-fixdate): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {hour:02}:{minute:02}:{second:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_imf_fixdate() {
        let at = |secs| http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn answers_are_framed_for_keep_alive_or_close() {
        let answer = Answer::error(401, "unauthorized", "no");
        let answer = Answer {
            challenge: true,
            ..answer
        };
        assert_eq!(answer.status(), 401);
        let mut out = Vec::new();
        answer.write_to(&mut out, b"Connection: close\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 401 Unauthorized\r\nDate: "),
            "{text}"
        );
        assert!(text.contains("\r\nWWW-Authenticate: Bearer\r\nConnection: close\r\n\r\n{"));
        let length = text.len() - text.find("\r\n\r\n").unwrap() - 4;
        assert!(text.contains(&format!("Content-Length: {length}\r\n")));
    }
}
