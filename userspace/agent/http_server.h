// The agent's HTTP endpoint (/metrics, /healthz, /readyz): a small HTTP/1.1 responder on one
// thread, and a matching one-shot GET for tests and tools.
//
// Hand-written rather than Boost.Beast: the traffic is a scrape every few seconds and a
// kubelet probe, one request per connection, GET only, no TLS, no keep-alive needed. A
// blocking accept loop with a read deadline serves that in ~150 lines we can read whole,
// keeps Asio's templates out of the agent's build (minutes on the 2-core CI machine), and has
// no io_context to stop. One connection at a time: a client that stalls is cut off by the
// 2 s deadline, so a stuck scraper delays the next scrape by at most that.
#ifndef XLB_USERSPACE_AGENT_HTTP_SERVER_H
#define XLB_USERSPACE_AGENT_HTTP_SERVER_H

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "loader/fd.h"
#include "util/result.h"

namespace xlb {

struct HttpResponse {
  HttpResponse() = default;
  HttpResponse(int status, std::string content_type, std::string body,
               std::vector<std::pair<std::string, std::string>> headers = {})
      : status(status),
        content_type(std::move(content_type)),
        body(std::move(body)),
        headers(std::move(headers)) {}

  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more header fields, in order
};

// "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464": numeric address and port. False with
// `problem` set when it is not one.
bool ParseListenAddress(std::string_view text, std::string& host, uint16_t& port,
                        std::string& problem);

class HttpServer {
 public:
  // Called on the server's thread for every GET/HEAD: the path (query string cut off).
  using Handler = std::function<HttpResponse(std::string_view path)>;

  // Binds and listens now (so a taken port fails start-up), then serves on a new thread.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& address, Handler handler);
  ~HttpServer();  // stops the thread
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }  // the bound port (useful with port 0)

 private:
  HttpServer(UniqueFd listener, uint16_t port, Handler handler);
  void Serve();
  void Answer(int fd);

  UniqueFd listener_;
  UniqueFd wake_read_;  // a pipe: the destructor writes, poll() wakes
  UniqueFd wake_write_;
  uint16_t port_;
  Handler handler_;
  std::thread thread_;
};

struct HttpReply {
  int status = 0;
  std::string headers;  // the header block as sent, status line included
  std::string body;
};

// GET http://address/path with Connection: close; the body is everything after the headers.
Result<HttpReply> HttpGet(const std::string& address, const std::string& path,
                          std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_HTTP_SERVER_H
