#include "userspace/kube/client/api_transport.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/text.h"

namespace xlb::kube {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using net::awaitable;
using net::use_awaitable;

struct ApiStream::Impl {
  explicit Impl(net::any_io_executor executor) : tcp(executor) {}

  bool tls = false;
  std::string peer;  // "127.0.0.1:6443", for messages
  std::unique_ptr<ssl::context> ssl_context;
  beast::tcp_stream tcp;  // plain HTTP only
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls_stream) : tcp; }

  template <typename Stream>
  awaitable<beast::error_code> ReadHeader(Stream& s) {
    beast::error_code ec;
    co_await http::async_read_header(s, buffer, parser, net::redirect_error(use_awaitable, ec));
    co_return ec;
  }
  template <typename Stream>
  awaitable<beast::error_code> ReadSomeBody(Stream& s) {
    beast::error_code ec;
    co_await http::async_read_some(s, buffer, parser, net::redirect_error(use_awaitable, ec));
    co_return ec;
  }
  template <typename Stream>
  awaitable<beast::error_code> Write(Stream& s, http::request<http::empty_body>& request) {
    beast::error_code ec;
    co_await http::async_write(s, request, net::redirect_error(use_awaitable, ec));
    co_return ec;
  }
};

ApiStream::ApiStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiStream::~ApiStream() = default;

int ApiStream::status() const {
  return static_cast<int>(impl_->parser.get().result_int());
}
std::string ApiStream::reason() const {
  return std::string(impl_->parser.get().reason());
}
std::string ApiStream::header(const std::string& name) const {
  return std::string(impl_->parser.get()[name]);
}

namespace {

bool IsIpLiteral(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

std::string OpenSslErrors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

// The TLS client context for one connection: trust anchors, client certificate, and checks.
KubeResult<std::unique_ptr<ssl::context>> MakeTlsContext(const ClusterConnection& c,
                                                         const Credential& credential) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (c.insecure_skip_tls_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (c.ca_pem.empty()) {
      ctx->set_default_verify_paths(ec);
      if (ec) return KubeError{c.origin + ": the system's CA store: " + ec.message()};
    } else {
      ctx->add_certificate_authority(net::buffer(c.ca_pem), ec);
      if (ec) {
        return KubeError{c.origin +
                         ": certificate authority is not a PEM certificate: " + ec.message()};
      }
    }
  }
  if (!credential.client_cert_pem.empty()) {
    ctx->use_certificate_chain(net::buffer(credential.client_cert_pem), ec);
    if (ec) return KubeError{c.origin + ": client certificate: " + ec.message()};
    ctx->use_private_key(net::buffer(credential.client_key_pem), ssl::context::pem, ec);
    if (ec) return KubeError{c.origin + ": client key: " + ec.message()};
  }
  return ctx;
}

}  // namespace

awaitable<KubeResult<std::unique_ptr<ApiStream>>> ApiStream::Open(
    const ClusterConnection& c, const Credential& credential, const std::string& target,
    const std::string& user_agent, std::chrono::milliseconds timeout) {
  auto executor = co_await net::this_coro::executor;
  auto impl = std::make_unique<Impl>(executor);
  impl->tls = c.tls;
  impl->peer = c.HostHeader();
  // A watch has no end; lists bound themselves. (Not boost::none: Beast 1.74 compares a
  // Content-Length against the empty optional and refuses every body.)
  impl->parser.body_limit(std::numeric_limits<std::uint64_t>::max());

  if (c.tls) {
    auto ctx = MakeTlsContext(c, credential);
    if (!ctx) co_return ctx.error();
    impl->ssl_context = std::move(*ctx);
    impl->tls_stream =
        std::make_unique<beast::ssl_stream<beast::tcp_stream>>(executor, *impl->ssl_context);
    SSL* ssl = impl->tls_stream->native_handle();
    const std::string name = c.VerifyName();
    const bool ip = IsIpLiteral(name);
    // RFC 6066: SNI carries DNS names only.
    if (!ip && !SSL_set_tlsext_host_name(ssl, name.c_str())) {
      co_return KubeError{"TLS setup for " + impl->peer + ": SNI: " + OpenSslErrors()};
    }
    if (!c.insecure_skip_tls_verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
      if (set != 1) co_return KubeError{"TLS setup: cannot check the name \"" + name + "\""};
    }
  }

  beast::error_code ec;
  net::ip::tcp::resolver resolver(executor);
  auto endpoints = co_await resolver.async_resolve(c.host, std::to_string(c.port),
                                                   net::redirect_error(use_awaitable, ec));
  if (ec) co_return KubeError{"resolve " + c.host + ": " + ec.message()};

  impl->lowest().expires_after(timeout);
  co_await impl->lowest().async_connect(endpoints, net::redirect_error(use_awaitable, ec));
  if (ec) co_return KubeError{"connect to " + impl->peer + ": " + ec.message()};

  if (c.tls) {
    co_await impl->tls_stream->async_handshake(ssl::stream_base::client,
                                               net::redirect_error(use_awaitable, ec));
    if (ec) {
      std::string why = ec.message();
      const long verify = SSL_get_verify_result(impl->tls_stream->native_handle());
      if (verify != X509_V_OK) {
        why += ": " + std::string(X509_verify_cert_error_string(verify));
      }
      co_return KubeError{"TLS handshake with " + impl->peer + ": " + why};
    }
  }

  http::request<http::empty_body> request{http::verb::get, c.path_prefix + target, 11};
  request.set(http::field::host, c.HostHeader());
  request.set(http::field::user_agent, user_agent);
  request.set(http::field::accept, "application/json");
  if (!credential.token.empty()) {
    request.set(http::field::authorization, "Bearer " + credential.token);
  }
  // (if/else, not ?: : GCC 12 mishandles co_await in conditional operands.)
  if (c.tls) {
    ec = co_await impl->Write(*impl->tls_stream, request);
  } else {
    ec = co_await impl->Write(impl->tcp, request);
  }
  if (ec) co_return KubeError{"send request to " + impl->peer + ": " + ec.message()};
  if (c.tls) {
    ec = co_await impl->ReadHeader(*impl->tls_stream);
  } else {
    ec = co_await impl->ReadHeader(impl->tcp);
  }
  if (ec) co_return KubeError{"read response header from " + impl->peer + ": " + ec.message()};
  co_return std::unique_ptr<ApiStream>(new ApiStream(std::move(impl)));
}

awaitable<KubeResult<std::optional<std::string>>> ApiStream::ReadSome(
    std::chrono::milliseconds idle_timeout) {
  Impl& s = *impl_;
  if (s.parser.is_done()) co_return std::optional<std::string>();
  char buf[16384];
  s.parser.get().body().data = buf;
  s.parser.get().body().size = sizeof buf;
  s.lowest().expires_after(idle_timeout);
  beast::error_code ec;
  if (s.tls) {
    ec = co_await s.ReadSomeBody(*s.tls_stream);
  } else {
    ec = co_await s.ReadSomeBody(s.tcp);
  }
  if (ec == http::error::need_buffer) ec = {};
  if (ec) {
    if (ec == beast::error::timeout) {
      co_return KubeError{"read from " + s.peer + ": nothing for " +
                          std::to_string(idle_timeout.count()) + " ms"};
    }
    co_return KubeError{"read from " + s.peer + ": " + ec.message()};
  }
  const size_t got = sizeof buf - s.parser.get().body().size;
  co_return std::optional<std::string>(std::string(buf, got));
}

awaitable<KubeResult<std::string>> ApiStream::ReadAll(std::chrono::milliseconds timeout,
                                                      size_t limit) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string body;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) co_return KubeError{"read from " + impl_->peer + ": timed out"};
    auto piece = co_await ReadSome(left);
    if (!piece) co_return piece.error();
    if (!*piece) co_return body;
    body += **piece;
    if (body.size() > limit) {
      co_return KubeError{"read from " + impl_->peer + ": response larger than " +
                          std::to_string(limit) + " bytes"};
    }
  }
}

std::string StatusMessage(const std::string& body) {
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && doc.contains("message") && doc["message"].is_string()) {
    return doc["message"].get<std::string>();
  }
  return AbbreviateUtf8(body, 200);
}

std::string QueryEscape(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace xlb::kube
