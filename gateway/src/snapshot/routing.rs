//! Services, routes and the router compiled from them.
//!
//! The router is compiled as a whole (priorities are global), so any change
//! to a service or a route recompiles it from the typed entities kept here;
//! with a thousand routes that takes about a millisecond.

use std::collections::HashMap;
use std::sync::Arc;

use schemas::model::{Route, Service};
use uuid::Uuid;

use crate::router::{Router, RouterError};

/// The routing part of a snapshot.
#[derive(Default)]
pub(super) struct Routing {
    pub(super) router: Router,
    pub(super) services: HashMap<Uuid, Arc<Service>>,
    routes: HashMap<Uuid, Arc<Route>>,
}

impl Routing {
    /// Compiles `routes` to the `services` they point at.
    pub(super) fn build(services: Vec<Service>, routes: Vec<Route>) -> Result<Self, RouterError> {
        let services = services
            .into_iter()
            .map(|service| (service.id, Arc::new(service)))
            .collect();
        let routes = routes
            .into_iter()
            .map(|route| (route.id, Arc::new(route)))
            .collect();
        Self::compile(services, routes)
    }

    /// A copy with `services` then `routes` changes applied, each in order
    /// (`None` removes the entity of that id), and the router recompiled.
    pub(super) fn with_changes(
        &self,
        services: Vec<(Uuid, Option<Service>)>,
        routes: Vec<(Uuid, Option<Route>)>,
    ) -> Result<Self, RouterError> {
        let mut next_services = self.services.clone();
        apply(&mut next_services, services);
        let mut next_routes = self.routes.clone();
        apply(&mut next_routes, routes);
        Self::compile(next_services, next_routes)
    }

    fn compile(
        services: HashMap<Uuid, Arc<Service>>,
        routes: HashMap<Uuid, Arc<Route>>,
    ) -> Result<Self, RouterError> {
        let listed: Vec<Arc<Route>> = routes.values().cloned().collect();
        let router = Router::build(&listed, &services)?;
        Ok(Routing {
            router,
            services,
            routes,
        })
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
