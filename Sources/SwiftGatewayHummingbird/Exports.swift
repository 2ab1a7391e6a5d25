// `import SwiftGatewayHummingbird` is enough for `Gateway.run(application)` and
// `Gateway.requestEnvironment`.
@_exported import struct SwiftGateway.CGIEnvironment
@_exported import enum SwiftGateway.Gateway
