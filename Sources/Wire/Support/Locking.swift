// How Wire guards its shared bookkeeping (pending calls, connection pools, the server's
// connections and tasks, the in-memory network and its transports): with `Synchronization.Mutex`
// around a value, the only way in being `withLock`.
//
// That state is touched both from NIO event-loop threads, which must not suspend, and from async
// callers, so it needs a lock rather than an actor. Critical sections must be short and must not
// call out to code that could take the same lock (a Mutex is not reentrant) nor resume
// continuations or complete promises: callers collect such work inside the lock and run it after.
