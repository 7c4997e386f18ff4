// A plain-HTTP server on 127.0.0.1:0 that answers each request with bytes a test scripts, for
// the cases the test API server cannot produce on cue (a continue token expiring between two
// pages, exact chunk framing, corrupt streams) and to look at the requests the client sends.
// One thread per connection; a reply marked `hold` keeps its connection open until the server
// stops (a watch that stays quiet).
#ifndef XLB_TESTS_KUBE_CLIENT_SCRIPTED_SERVER_H
#define XLB_TESTS_KUBE_CLIENT_SCRIPTED_SERVER_H

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xlb::testing {

class ScriptedServer {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  struct Reply {
    std::string bytes;  // written as they are
    bool hold = false;  // keep the connection open afterwards (until Stop)
  };
  // Called with the request and its 0-based number.
  using Script = std::function<Reply(const Request&, int)>;

  explicit ScriptedServer(Script script)
      : script_(std::move(script)),
        acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~ScriptedServer() { Stop(); }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      // shutdown() wakes the threads blocked in accept() and read(); they close the fds.
      ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
      for (auto& socket : sockets_) ::shutdown(socket.native_handle(), SHUT_RDWR);
    }
    accept_thread_.join();
    for (auto& t : connection_threads_) t.join();
  }

  uint16_t port() const { return port_; }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

  static std::string Chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
  }
  static std::string JsonResponse(int status, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
           body;
  }
  static std::string ChunkedHead() {
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           "Connection: close\r\n\r\n";
  }
  static constexpr const char* kLastChunk = "0\r\n\r\n";

 private:
  void AcceptLoop() {
    for (;;) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mu_);
      if (ec || stopped_) return;
      sockets_.push_back(std::move(socket));
      auto* s = &sockets_.back();
      connection_threads_.emplace_back([this, s] { Serve(*s); });
    }
  }

  void Serve(boost::asio::ip::tcp::socket& socket) {
    boost::system::error_code ec;
    boost::beast::flat_buffer buffer;
    Request request;
    boost::beast::http::read(socket, buffer, request, ec);
    if (ec) return;
    int number;
    {
      std::lock_guard lock(mu_);
      number = static_cast<int>(requests_.size());
      requests_.push_back(request);
    }
    Reply reply = script_(request, number);
    boost::asio::write(socket, boost::asio::buffer(reply.bytes), ec);
    if (reply.hold) {
      char c;
      socket.read_some(boost::asio::buffer(&c, 1), ec);  // until the client or Stop closes it
    }
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  }

  Script script_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  bool stopped_ = false;
  std::vector<Request> requests_;
  std::list<boost::asio::ip::tcp::socket> sockets_;
  std::vector<std::thread> connection_threads_;
  std::thread accept_thread_;
};

}  // namespace xlb::testing

#endif  // XLB_TESTS_KUBE_CLIENT_SCRIPTED_SERVER_H
