// One HTTP/1.1 GET to an API server over TLS (or plain TCP for tests), read as a stream: the
// status and headers first, then the body piece by piece as it arrives (chunked transfer
// decoding by Beast), which is what a watch needs; a list reads it whole.
//
// Written as Asio C++20 coroutines: the client runs one io_context thread per cluster and
// every resource's reflector is a coroutine on it, so stopping the client is stopping that
// io_context, which wakes a watch blocked on a silent server at once.
//
// TLS: the server's certificate must chain to the connection's CA and carry its name
// (tls-server-name or the host; a DNS name or an IP address SAN, checked by OpenSSL's own
// X509_VERIFY_PARAM host/IP matching), SNI is sent for DNS names, TLS 1.2 at least.
#ifndef XLB_USERSPACE_KUBE_CLIENT_API_TRANSPORT_H
#define XLB_USERSPACE_KUBE_CLIENT_API_TRANSPORT_H

// <utility> before Boost 1.74's awaitable.hpp, which uses std::exchange without including it.
// clang-format off
#include <utility>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
// clang-format on

#include "userspace/kube/client/cluster_connection.h"
#include "userspace/kube/client/credentials.h"
#include "userspace/kube/client/kube_error.h"

namespace xlb::kube {

class ApiStream {
 public:
  ~ApiStream();
  ApiStream(const ApiStream&) = delete;
  ApiStream& operator=(const ApiStream&) = delete;

  // Connects, handshakes, sends `GET target` and reads the response header, all within
  // `timeout`. Errors say which step failed ("connect to 127.0.0.1:6443: Connection refused",
  // "TLS handshake with 127.0.0.1:6443: certificate verify failed: ..."); an HTTP error status
  // is not an error here (the caller decides what a 410 means).
  static boost::asio::awaitable<KubeResult<std::unique_ptr<ApiStream>>> Open(
      const ClusterConnection& connection, const Credential& credential, const std::string& target,
      const std::string& user_agent, std::chrono::milliseconds timeout);

  int status() const;
  std::string reason() const;
  // A response header's value, "" when absent.
  std::string header(const std::string& name) const;

  // The next piece of the body, chunk framing removed (it may be empty: a chunk header alone);
  // nullopt once the body is complete. Fails when nothing arrives within `idle_timeout` or the
  // connection breaks before the body's end.
  boost::asio::awaitable<KubeResult<std::optional<std::string>>> ReadSome(
      std::chrono::milliseconds idle_timeout);
  // The rest of the body, failing beyond `limit` bytes.
  boost::asio::awaitable<KubeResult<std::string>> ReadAll(std::chrono::milliseconds timeout,
                                                          size_t limit);

 private:
  struct Impl;
  explicit ApiStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The message of a Kubernetes Status body ({"kind":"Status","message":"..."}), or the start of
// the body when it is not one.
std::string StatusMessage(const std::string& body);

// Percent-encodes a query parameter value (continue tokens are base64 with '=' and '/').
std::string QueryEscape(const std::string& value);

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_API_TRANSPORT_H
