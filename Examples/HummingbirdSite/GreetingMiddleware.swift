import HTTPTypes
import Hummingbird

/// Picks the greeting from `Accept-Language` and marks every response it passes on.
struct GreetingMiddleware: RouterMiddleware {
    typealias Context = SiteContext

    // A valid name, checked once here.
    static let markField = HTTPField.Name("X-Site-Middleware")!

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        var context = context
        if request.headers[.acceptLanguage]?.hasPrefix("fr") == true { context.greeting = "Bonjour" }
        var response = try await next(request, context)
        response.headers[Self.markField] = "greeting=\(context.greeting)"
        return response
    }
}
