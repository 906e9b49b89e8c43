//! The route table as data. Every API route is one `Route` entry: method,
//! path pattern, who may call it, and the handler. Because it is data, the
//! permission-matrix test can enumerate it, and a new route without an
//! access rule cannot exist (the field is not optional).

use std::future::Future;
use std::pin::Pin;

use warp::http::Method;

use super::request::Req;
use crate::error::ApiError;

pub type Response = warp::reply::Response;
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;
pub type Handler = fn(Req) -> HandlerFuture;

/// Who may call a route. Checked by the dispatcher before the handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler applies its own rate limits.
    Public,
    /// Any signed-in user.
    User,
    /// Users with the global admin flag.
    GlobalAdmin,
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
    /// Unsafe methods under session auth need the CSRF header unless this is
    /// set; only routes used before a session exists opt out.
    pub csrf_exempt: bool,
}

/// `route!(POST "/api/v1/auth/login", Public, csrf_exempt, auth::login)`
#[macro_export]
macro_rules! route {
    ($method:ident $path:literal, $access:ident, csrf_exempt, $handler:path) => {
        $crate::routes::router::Route {
            method: warp::http::Method::$method,
            path: $path,
            access: $crate::routes::router::Access::$access,
            handler: |r| Box::pin($handler(r)),
            csrf_exempt: true,
        }
    };
    ($method:ident $path:literal, $access:ident, $handler:path) => {
        $crate::routes::router::Route {
            method: warp::http::Method::$method,
            path: $path,
            access: $crate::routes::router::Access::$access,
            handler: |r| Box::pin($handler(r)),
            csrf_exempt: false,
        }
    };
}

enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

pub struct Router {
    routes: Vec<(Vec<Seg>, Route)>,
}

pub enum Found<'a> {
    Route(&'a Route, Vec<(&'static str, String)>),
    MethodNotAllowed(String),
    NotFound,
}

fn split(path: &'static str) -> Vec<Seg> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => Seg::Param(name),
            None => Seg::Lit(s),
        })
        .collect()
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes: routes.into_iter().map(|r| (split(r.path), r)).collect() }
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(_, r)| r)
    }

    pub fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut allowed: Vec<&str> = Vec::new();
        for (segs, route) in &self.routes {
            let Some(params) = matches(segs, &parts) else {
                continue;
            };
            let same = route.method == *method || (*method == Method::HEAD && route.method == Method::GET);
            if same {
                return Found::Route(route, params);
            }
            allowed.push(route.method.as_str());
        }
        if allowed.is_empty() {
            Found::NotFound
        } else {
            allowed.sort_unstable();
            allowed.dedup();
            Found::MethodNotAllowed(allowed.join(", "))
        }
    }
}

fn matches(segs: &[Seg], parts: &[&str]) -> Option<Vec<(&'static str, String)>> {
    if segs.len() != parts.len() {
        return None;
    }
    let mut params = Vec::new();
    for (seg, part) in segs.iter().zip(parts) {
        match seg {
            Seg::Lit(l) if l == part => {}
            Seg::Lit(_) => return None,
            Seg::Param(name) => {
                if part.is_empty() {
                    return None;
                }
                let decoded = percent_encoding::percent_decode_str(part).decode_utf8().ok()?;
                params.push((*name, decoded.into_owned()));
            }
        }
    }
    Some(params)
}
