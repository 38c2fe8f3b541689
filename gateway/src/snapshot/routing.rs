//! Services, routes and the router compiled from them, and each route's
//! metric handles.
//!
//! The router is compiled as a whole (priorities are global), so any change
//! to a service or a route recompiles it from the typed entities kept here;
//! with a thousand routes that takes about a millisecond. Each route gets
//! its [`RouteSeries`] (the prometheus plugin's handles, labelled with its
//! service's and its own name); a route whose labels did not change keeps
//! the previous snapshot's, with the series it already resolved.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use schemas::model::{Route, Service};
use uuid::Uuid;

use crate::observability::{KongMetrics, RouteSeries};
use crate::router::{Router, RouterError};

/// Route handles by route id, hashed by the id's own (random) bits.
pub(super) type SeriesById = HashMap<Uuid, Arc<RouteSeries>, BuildHasherDefault<IdHasher>>;

/// The routing part of a snapshot.
#[derive(Default)]
pub(super) struct Routing {
    pub(super) router: Router,
    pub(super) services: HashMap<Uuid, Arc<Service>>,
    routes: HashMap<Uuid, Arc<Route>>,
    pub(super) series: SeriesById,
}

impl Routing {
    /// Compiles `routes` to the `services` they point at; their handles
    /// register into `metrics`.
    pub(super) fn build(
        services: Vec<Service>,
        routes: Vec<Route>,
        metrics: &Arc<KongMetrics>,
    ) -> Result<Self, RouterError> {
        let services = services
            .into_iter()
            .map(|service| (service.id, Arc::new(service)))
            .collect();
        let routes = routes
            .into_iter()
            .map(|route| (route.id, Arc::new(route)))
            .collect();
        Self::compile(services, routes, &SeriesById::default(), metrics)
    }

    /// A copy with `services` then `routes` changes applied, each in order
    /// (`None` removes the entity of that id), and the router recompiled.
    pub(super) fn with_changes(
        &self,
        services: Vec<(Uuid, Option<Service>)>,
        routes: Vec<(Uuid, Option<Route>)>,
        metrics: &Arc<KongMetrics>,
    ) -> Result<Self, RouterError> {
        let mut next_services = self.services.clone();
        apply(&mut next_services, services);
        let mut next_routes = self.routes.clone();
        apply(&mut next_routes, routes);
        Self::compile(next_services, next_routes, &self.series, metrics)
    }

    fn compile(
        services: HashMap<Uuid, Arc<Service>>,
        routes: HashMap<Uuid, Arc<Route>>,
        previous: &SeriesById,
        metrics: &Arc<KongMetrics>,
    ) -> Result<Self, RouterError> {
        let listed: Vec<Arc<Route>> = routes.values().cloned().collect();
        let router = Router::build(&listed, &services)?;
        let series = route_series(&routes, &services, previous, metrics);
        Ok(Routing {
            router,
            services,
            routes,
            series,
        })
    }
}

/// Every route's handles: the previous ones where the labels are the same.
fn route_series(
    routes: &HashMap<Uuid, Arc<Route>>,
    services: &HashMap<Uuid, Arc<Service>>,
    previous: &SeriesById,
    metrics: &Arc<KongMetrics>,
) -> SeriesById {
    routes
        .iter()
        .map(|(id, route)| {
            let service = route
                .service
                .as_ref()
                .and_then(|key| services.get(&key.id))
                .map(|service| service.as_ref());
            let series = match previous.get(id) {
                Some(series) if series.has_labels(route, service) => Arc::clone(series),
                _ => Arc::new(RouteSeries::new(metrics, route, service)),
            };
            (*id, series)
        })
        .collect()
}

/// A hasher for random ids: folds their bytes instead of running SipHash
/// over them (the map is only read by the log phase, per request).
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// Applies changes by id to a map of shared entities.
fn apply<T>(map: &mut HashMap<Uuid, Arc<T>>, changes: Vec<(Uuid, Option<T>)>) {
    for (id, entity) in changes {
        match entity {
            Some(entity) => map.insert(id, Arc::new(entity)),
            None => map.remove(&id),
        };
    }
}
