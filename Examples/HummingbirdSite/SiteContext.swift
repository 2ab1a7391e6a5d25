import Hummingbird

/// The application's own request context: what `GreetingMiddleware` decides, for the handlers.
struct SiteContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var greeting = "Hello"

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// JSON bodies over 64 KiB are answered 413 before a handler sees them.
    var maxUploadSize: Int { 64 * 1024 }
}
