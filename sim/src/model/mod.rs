//! Infrastructure models: the vocabulary patterns are written in.
//!
//! | model | what it is |
//! | --- | --- |
//! | [`breaker`] | circuit breakers: Polly v7 consecutive, Polly v8 ratio, resilience4j windows |
//! | [`workload`] | arrival processes (constant, Poisson with phases, trace) and message classes |
//! | [`queue`] | Storage Queue / Service Bus semantics: locks, delivery count, DLQ, TTL |
//! | [`lanes`] | a queue's waiting line split by class (strict priority), and how long each class starves |
//! | [`event_grid`] | Event Grid push delivery: retry schedule, what each answer means, probation |
//! | [`service`] | downstream dependencies with latency, errors, timeouts and fault windows |
//! | [`stream`] | an event stream (Event Hubs): partitions, checkpoints, ownership, the stream breaker, Functions retry policies |
//! | [`store`] | a database: transactions that commit atomically, unique constraints, typed tables |
//! | [`host`] | consumer instances with concurrency, crashes and restarts |
//! | [`retry`] | Polly / AWS retry delays |
//! | [`lease`] | a lease lock with expiry and fencing tokens (blob lease, Redis `SET NX PX`) |
//! | [`cost`] | billing per hosting plan |
//! | [`gpu`] | a GPU's batch latency (a line or a measured profile), memory, and the GPU kinds |
//! | [`trigger`] | the Functions queue trigger's receive loop: batches, `newBatchThreshold`, polling back-off |
//! | [`worker`] | the standard handler: work, call the services, complete or abandon |
//! | [`scaler`] | target-based autoscaling (Functions scale controller, KEDA) |
//! | [`web`] | the web tier sharing a WebJob's CPU |
//! | [`meters`] | the message ledger, latency histograms, time series |
//! | [`series`] | the time series: streamed to a sink, kept as a bounded downsample |

pub mod breaker;
pub mod cost;
pub mod cpu;
pub mod event_grid;
pub mod gpu;
pub mod host;
pub mod lanes;
pub mod lease;
pub mod meters;
pub mod process;
pub mod queue;
pub mod retry;
pub mod scaler;
pub mod series;
pub mod service;
pub mod store;
pub mod stream;
pub mod trigger;
pub mod web;
pub mod worker;
pub mod workload;
