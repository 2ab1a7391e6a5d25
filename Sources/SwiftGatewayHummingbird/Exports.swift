// `import SwiftGatewayHummingbird` is enough for `Gateway.run(application)`.
@_exported import enum SwiftGateway.Gateway
