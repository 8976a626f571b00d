//! The [`Registry`]: named providers, aliases ("tiers"), one shared health tracker, and the
//! chain-spec grammar that turns `"fast, thinking, ollama/qwen3:30b"` into a failover
//! [`Chain`].
//!
//! Grammar, exactly:
//! - a spec is comma-separated elements; whitespace around each is trimmed;
//! - an element with a `/` is `provider/model-id`: the provider is everything before the
//!   FIRST `/`, the model id everything after it, verbatim (it may contain `/` and `:`,
//!   e.g. `openrouter/meta-llama/llama-3:free`);
//! - an element without `/` must be an alias, expanded inline, recursively (a cycle is an
//!   error naming it: `a -> b -> a`), or else a **virtual model** registered with
//!   [`Registry::add_virtual`] (e.g. `auto:code`, a model that picks its own targets at call
//!   time), which stands in the chain as one target;
//! - after expansion, duplicate targets are dropped, the first occurrence wins (an alias met
//!   again after its full expansion is not expanded again, so resolving takes time linear in
//!   the spec and the alias table, and it uses no recursion, whatever the aliases);
//! - an empty element, an empty spec, an unknown provider (the error lists the registered
//!   ones) or an element that is neither an alias nor `provider/model` is a [`ConfigError`].
//!
//! Virtual models are the registry's one extension point for crates above this one (the
//! fleet's `auto:*` routing lives in `executus-fleet`, which this crate cannot depend on):
//! they make a name usable wherever a model spec is, without this crate knowing what they do.
//! A virtual model's errors are treated like any target's by the chain around it (an
//! exhausted inner chain advances without a health penalty).
//!
//! The registry is cheap to clone; clones share providers, aliases and health. Changes apply
//! to chains built afterwards; a chain already built keeps its targets (but shares the live
//! health tracker). Building a chain makes no network call.
//!
//! A spec's resolved targets (their model handles, capability overrides applied, with their
//! `provider/model` keys) are kept after the first chain built from it, so that a run or a
//! gateway request building its chain neither parses and resolves the same spec again nor
//! copies its keys (at most [`RESOLVED_CACHE`] specs; any change to the registry
//! forgets them all). A provider's [`Provider::model`] handles are therefore shared by the
//! chains of one spec, as they already are by a chain's concurrent calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use crate::chain::{Chain, ChainObserver, ChainOptions, Link};
use crate::dsn::{ProviderSpec, validate_name};
use crate::error::{ConfigError, Result};
use crate::health::HealthTracker;
use crate::http::HttpOptions;
use crate::imagegen::{ImageChain, ImageModel};
use crate::model::{Model, Provider};
use crate::stream::EventStream;
use crate::target::Target;
use crate::types::{Capabilities, Request, Response};

/// How many specs' resolved targets [`Registry::chain`] keeps (then it starts over): the
/// specs a host uses are few; a gateway's clients may name many, and none may grow it.
pub const RESOLVED_CACHE: usize = 256;

/// A spec's chain name and its targets' links (model handle and `provider/model` key), in
/// order: all a chain per request needs, shared.
type Targets = (Arc<str>, Arc<[Link<dyn Model>]>);

#[derive(Default)]
struct Inner {
    /// Resolved targets by spec (see the module doc); emptied by every change.
    resolved: Mutex<HashMap<String, Targets>>,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    aliases: BTreeMap<String, String>,
    virtuals: BTreeMap<String, Arc<dyn Model>>,
    capabilities: HashMap<Target, Capabilities>,
    options: ChainOptions,
    observer: Option<Arc<dyn ChainObserver>>,
}

/// Providers by name, aliases, capability overrides and one shared [`HealthTracker`].
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<Inner>>,
    health: HealthTracker,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        f.debug_struct("Registry")
            .field("providers", &inner.providers.keys().collect::<Vec<_>>())
            .field("aliases", &inner.aliases)
            .field("virtuals", &inner.virtuals.keys().collect::<Vec<_>>())
            .field("capabilities", &inner.capabilities)
            .field("options", &inner.options)
            .field("observer", &inner.observer.is_some())
            .field("health", &self.health)
            .finish()
    }
}

impl Registry {
    /// An empty registry with a default health tracker on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry sharing `health` (e.g. one on a manual clock).
    pub fn with_health(health: HealthTracker) -> Self {
        Self { inner: Arc::default(), health }
    }

    /// A registry holding every provider of the `EXECUTUS_LLM_<NAME>=<dsn>` pairs in `vars`.
    ///
    /// # Errors
    /// As [`ProviderSpec::from_vars`].
    pub fn from_vars<I, K, V>(vars: I, http: &HttpOptions) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let registry = Self::new();
        for spec in ProviderSpec::from_vars(vars)? {
            registry.add_spec(&spec, http.clone())?;
        }
        Ok(registry)
    }

    /// [`Registry::from_vars`] over the process environment, with default HTTP options.
    ///
    /// # Errors
    /// As [`ProviderSpec::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let registry = Self::new();
        for spec in ProviderSpec::from_env()? {
            registry.add_spec(&spec, HttpOptions::default())?;
        }
        Ok(registry)
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // Every write below is a single insert or assignment, so a poisoned lock still
        // guards consistent data.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        // Whatever the caller changes, specs resolve afresh.
        inner.resolved.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        inner
    }

    /// Registers `provider` under its own [`Provider::name`], replacing any provider of that name.
    ///
    /// # Errors
    /// [`ConfigError::BadName`] if the name is empty or holds characters other than ASCII
    /// letters, digits, `-`, `_`, `.`.
    pub fn add_provider(&self, provider: Arc<dyn Provider>) -> Result<(), ConfigError> {
        let name = provider.name().to_owned();
        validate_name(&name)?;
        self.write().providers.insert(name, provider);
        Ok(())
    }

    /// Builds and registers the provider `spec` describes.
    ///
    /// # Errors
    /// As [`Registry::add_provider`].
    pub fn add_spec(&self, spec: &ProviderSpec, http: HttpOptions) -> Result<(), ConfigError> {
        self.add_provider(spec.build(http))
    }

    /// Defines (or redefines) alias `name` as a chain spec. References are checked when a
    /// spec is resolved, so aliases may be defined in any order.
    ///
    /// # Errors
    /// [`ConfigError::BadName`] for a bad name, [`ConfigError::EmptyChain`] for a blank spec.
    pub fn set_alias(&self, name: &str, spec: impl Into<String>) -> Result<(), ConfigError> {
        validate_name(name)?;
        let spec = spec.into();
        if spec.trim().is_empty() {
            return Err(ConfigError::EmptyChain { spec });
        }
        self.write().aliases.insert(name.to_owned(), spec);
        Ok(())
    }

    /// Registers `model` as the virtual model `name`: a chain element `name` that is not an
    /// alias resolves to it, as one target. Re-registering a name replaces the model. Names
    /// may use ASCII letters, digits, `-`, `_`, `.` and `:` (so `auto:code` is one), and must
    /// not start or end with `:`.
    ///
    /// # Errors
    /// [`ConfigError::BadName`] for a bad name.
    pub fn add_virtual(&self, name: &str, model: Arc<dyn Model>) -> Result<(), ConfigError> {
        validate_virtual_name(name)?;
        self.write().virtuals.insert(name.to_owned(), model);
        Ok(())
    }

    /// Removes the virtual model `name`, returning it.
    pub fn remove_virtual(&self, name: &str) -> Option<Arc<dyn Model>> {
        self.write().virtuals.remove(name)
    }

    /// Registered virtual model names, sorted.
    pub fn virtual_names(&self) -> Vec<String> {
        self.read().virtuals.keys().cloned().collect()
    }

    /// Overrides what target `provider/model` reports from [`Model::capabilities`] in chains
    /// built from now on. Fields set (`Some`) in `capabilities` win; unset ones fall back to
    /// the model's own.
    ///
    /// # Errors
    /// [`ConfigError::BadElement`] unless `target` is `provider/model` with both parts non-empty.
    pub fn set_capabilities(&self, target: &str, capabilities: Capabilities) -> Result<(), ConfigError> {
        let target: Target =
            target.parse().map_err(|_| ConfigError::BadElement { element: target.to_owned() })?;
        self.write().capabilities.insert(target, capabilities);
        Ok(())
    }

    /// Sets the options of chains built from now on.
    pub fn set_options(&self, options: ChainOptions) {
        self.write().options = options;
    }

    /// Sets the observer of chains built from now on.
    pub fn set_observer(&self, observer: Arc<dyn ChainObserver>) {
        self.write().observer = Some(observer);
    }

    /// The shared health tracker.
    pub fn health(&self) -> &HealthTracker {
        &self.health
    }

    /// The provider registered as `name`.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.read().providers.get(name).cloned()
    }

    /// Registered provider names, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        self.read().providers.keys().cloned().collect()
    }

    /// Aliases and their specs, sorted by name.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.read().aliases.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The targets `spec` expands to, in order.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the offending element (see the module docs for the grammar).
    /// A virtual model stands as its own [`Model::target`].
    pub fn resolve(&self, spec: &str) -> Result<Vec<Target>, ConfigError> {
        Ok(resolve(&self.read(), spec)?
            .into_iter()
            .map(|t| match t {
                Resolved::Target(target) => target,
                Resolved::Virtual(model) => model.target(),
            })
            .collect())
    }

    /// The failover chain `spec` describes (a chain even for a single target).
    ///
    /// # Errors
    /// As [`Registry::resolve`].
    pub fn chain(&self, spec: &str) -> Result<Chain, ConfigError> {
        let inner = self.read();
        let cached = inner.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(spec).cloned();
        let (name, links) = match cached {
            Some(targets) => targets,
            None => {
                let links: Arc<[Link<dyn Model>]> =
                    Self::chain_models(&inner, spec)?.into_iter().map(Link::new).collect();
                let targets: Targets = (Arc::from(spec.trim()), links);
                let mut resolved = inner.resolved.lock().unwrap_or_else(PoisonError::into_inner);
                if resolved.len() >= RESOLVED_CACHE {
                    resolved.clear();
                }
                resolved.insert(spec.to_owned(), targets.clone());
                targets
            }
        };
        let observer = inner.observer.clone().unwrap_or_else(Chain::no_observer);
        Ok(Chain::from_links(name, links, self.health.clone(), inner.options.clone(), observer))
    }

    /// The model handles of `spec`'s targets, in order.
    fn chain_models(inner: &Inner, spec: &str) -> Result<Vec<Arc<dyn Model>>, ConfigError> {
        let targets = resolve(inner, spec)?;
        let mut models: Vec<Arc<dyn Model>> = Vec::with_capacity(targets.len());
        for resolved in &targets {
            let target = match resolved {
                Resolved::Virtual(model) => {
                    models.push(Arc::clone(model));
                    continue;
                }
                Resolved::Target(target) => target,
            };
            // resolve() only returns registered providers, and the read lock is still held.
            let Some(p) = inner.providers.get(&target.provider) else {
                return Err(unknown_provider(inner, &target.provider, &target.to_string()));
            };
            let base = p.model(&target.model);
            models.push(match inner.capabilities.get(target) {
                Some(caps) => Arc::new(WithCapabilities { inner: base, overrides: *caps }),
                None => base,
            });
        }
        Ok(models)
    }

    /// The image-generation chain `spec` describes (same grammar, aliases and health as
    /// [`Registry::chain`]); every target's provider must declare image output
    /// ([`Provider::image_model`]).
    ///
    /// # Errors
    /// As [`Registry::resolve`], and [`ConfigError::NoImageOutput`] naming a target whose
    /// provider cannot generate images.
    pub fn image_chain(&self, spec: &str) -> Result<ImageChain, ConfigError> {
        let inner = self.read();
        let targets = resolve(&inner, spec)?;
        let mut models: Vec<Arc<dyn ImageModel>> = Vec::with_capacity(targets.len());
        for resolved in &targets {
            let target = match resolved {
                // Virtual models (`auto:*`) route chat, not image generation.
                Resolved::Virtual(model) => {
                    let target = model.target();
                    return Err(ConfigError::NoImageOutput {
                        provider: target.provider.clone(),
                        element: target.to_string(),
                    });
                }
                Resolved::Target(target) => target,
            };
            let element = target.to_string();
            let Some(p) = inner.providers.get(&target.provider) else {
                return Err(unknown_provider(&inner, &target.provider, &element));
            };
            let Some(image) = p.image_model(&target.model) else {
                return Err(ConfigError::NoImageOutput { provider: target.provider.clone(), element });
            };
            models.push(image);
        }
        let mut chain =
            ImageChain::new(spec.trim(), models, self.health.clone()).with_options(inner.options.clone());
        if let Some(observer) = &inner.observer {
            chain = chain.with_observer(Arc::clone(observer));
        }
        Ok(chain)
    }

    /// [`Registry::chain`] as the currency type, `Arc<dyn Model>`.
    ///
    /// # Errors
    /// As [`Registry::resolve`].
    pub fn parse(&self, spec: &str) -> Result<Arc<dyn Model>, ConfigError> {
        Ok(Arc::new(self.chain(spec)?))
    }
}

/// One resolved chain element.
enum Resolved {
    /// `provider/model`.
    Target(Target),
    /// A virtual model.
    Virtual(Arc<dyn Model>),
}

fn validate_virtual_name(name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        "a name must not be empty"
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
        "use only ASCII letters, digits, '-', '_', '.' and ':'"
    } else if name.starts_with(':') || name.ends_with(':') {
        "a virtual model's name must not start or end with ':'"
    } else {
        return Ok(());
    };
    Err(ConfigError::BadName { name: name.to_owned(), reason: reason.to_owned() })
}

fn resolve(inner: &Inner, spec: &str) -> Result<Vec<Resolved>, ConfigError> {
    if spec.trim().is_empty() {
        return Err(ConfigError::EmptyChain { spec: spec.to_owned() });
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Depth-first expansion with an explicit stack, so a long alias chain cannot overflow the
    // thread's stack. Each frame is a spec being expanded and the elements it has left; the
    // aliases being expanded are `path` (for the cycle error) and `open` (for a fast check).
    let mut frames: Vec<(&str, std::str::Split<'_, char>)> = vec![(spec, spec.split(','))];
    let mut path: Vec<&str> = Vec::new();
    let mut open: HashSet<&str> = HashSet::new();
    // Aliases already expanded in full: expanding one again could only add duplicates (its
    // errors would have ended the first expansion), and skipping it keeps specs like
    // `a = "b, b"`, `b = "c, c"`, ... linear instead of exponential.
    let mut done: HashSet<&str> = HashSet::new();
    while let Some((frame_spec, elements)) = frames.last_mut() {
        let frame_spec: &str = frame_spec;
        let Some(element) = elements.next() else {
            frames.pop();
            if let Some(alias) = path.pop() {
                open.remove(alias);
                done.insert(alias);
            }
            continue;
        };
        let element = element.trim();
        if element.is_empty() {
            return Err(ConfigError::EmptyElement { spec: frame_spec.to_owned() });
        }
        if element.contains('/') {
            let target: Target =
                element.parse().map_err(|_| ConfigError::BadElement { element: element.to_owned() })?;
            if !inner.providers.contains_key(&target.provider) {
                return Err(unknown_provider(inner, &target.provider, element));
            }
            if seen.insert(target.clone()) {
                out.push(Resolved::Target(target));
            }
        } else if let Some((alias, alias_spec)) = inner.aliases.get_key_value(element) {
            if done.contains(element) {
                continue;
            }
            if open.contains(element) {
                let start = path.iter().position(|a| *a == element).unwrap_or_default();
                let mut cycle: Vec<String> = path[start..].iter().map(|a| (*a).to_owned()).collect();
                cycle.push(element.to_owned());
                return Err(ConfigError::AliasCycle { cycle });
            }
            path.push(alias);
            open.insert(alias);
            frames.push((alias_spec, alias_spec.split(',')));
        } else if let Some(model) = inner.virtuals.get(element) {
            // Deduplicated like any target, by what it reports as its provider and id.
            if seen.insert(model.target()) {
                out.push(Resolved::Virtual(Arc::clone(model)));
            }
        } else {
            return Err(ConfigError::BadElement { element: element.to_owned() });
        }
    }
    Ok(out)
}

fn unknown_provider(inner: &Inner, provider: &str, element: &str) -> ConfigError {
    let known: Vec<&str> = inner.providers.keys().map(String::as_str).collect();
    ConfigError::UnknownProvider {
        provider: provider.to_owned(),
        element: element.to_owned(),
        known: if known.is_empty() { "none".to_owned() } else { known.join(", ") },
    }
}

/// A model whose reported capabilities are overridden by configuration.
#[derive(Debug)]
struct WithCapabilities {
    inner: Arc<dyn Model>,
    overrides: Capabilities,
}

#[async_trait]
impl Model for WithCapabilities {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn capabilities(&self) -> Capabilities {
        let own = self.inner.capabilities();
        let o = self.overrides;
        Capabilities {
            tools: o.tools.or(own.tools),
            vision: o.vision.or(own.vision),
            structured_output: o.structured_output.or(own.structured_output),
            streaming: o.streaming.or(own.streaming),
        }
    }

    fn media_limits(&self) -> Option<crate::media::MediaLimits> {
        self.inner.media_limits()
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        self.inner.generate(request).await
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        self.inner.stream(request).await
    }

    async fn generate_ref(&self, request: &Request) -> Result<Response> {
        self.inner.generate_ref(request).await
    }

    async fn stream_ref(&self, request: &Request) -> Result<EventStream> {
        self.inner.stream_ref(request).await
    }
}
