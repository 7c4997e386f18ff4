#include "tests/kube/apiserver/test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace xlb::testing {

using Clock = std::chrono::steady_clock;

namespace {

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<long>(0, left.count()));
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

RawHttpClient::RawHttpClient(uint16_t port, const std::string& ca_pem) {
  // SSL_write on a socket the server dropped would raise SIGPIPE; the test wants the error.
  ::signal(SIGPIPE, SIG_IGN);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (ca_pem.empty()) return;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ssl_ctx_ = ctx;
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (ca == nullptr) throw std::runtime_error("CA PEM does not parse");
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
  X509_free(ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx);
  ssl_ = ssl;
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
  SSL_set_fd(ssl, fd_);
  if (SSL_connect(ssl) != 1 || SSL_get_verify_result(ssl) != X509_V_OK) {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof(err));
    throw std::runtime_error(std::string("TLS handshake/verification failed: ") + err);
  }
}

RawHttpClient::~RawHttpClient() {
  if (ssl_ != nullptr) SSL_free(static_cast<SSL*>(ssl_));
  if (ssl_ctx_ != nullptr) SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
  if (fd_ >= 0) ::close(fd_);
}

void RawHttpClient::Send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    long n;
    if (ssl_ != nullptr) {
      n = SSL_write(static_cast<SSL*>(ssl_), bytes.data() + sent, int(bytes.size() - sent));
    } else {
      n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    }
    if (n <= 0) throw std::runtime_error("send failed");
    sent += size_t(n);
  }
}

bool RawHttpClient::Fill(Clock::time_point deadline) {
  SSL* ssl = static_cast<SSL*>(ssl_);
  if (ssl == nullptr || SSL_pending(ssl) == 0) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, MsLeft(deadline));
    if (r == 0) {
      end_ = End::kTimeout;
      return false;
    }
  }
  char buf[16384];
  long n = ssl != nullptr ? SSL_read(ssl, buf, sizeof(buf)) : ::recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) {
    end_ = End::kAbrupt;
    return false;
  }
  in_.append(buf, size_t(n));
  return true;
}

RawHttpClient::Response RawHttpClient::ReadHead(Clock::time_point deadline) {
  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (!Fill(deadline)) throw std::runtime_error("no complete response head");
  }
  std::istringstream head(in_.substr(0, end));
  in_.erase(0, end + 4);
  Response res;
  std::string line;
  std::getline(head, line);
  if (line.rfind("HTTP/1.1 ", 0) != 0) throw std::runtime_error("bad status line: " + line);
  res.status = std::stoi(line.substr(9, 3));
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    res.headers[Lower(line.substr(0, colon))] = value;
  }
  return res;
}

RawHttpClient::Response RawHttpClient::Request(const std::string& method, const std::string& target,
                                               const std::string& token, const std::string& body,
                                               std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "Accept: application/json\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  Send(req + "\r\n" + body);
  Response res = ReadHead(deadline);
  if (res.headers["transfer-encoding"] == "chunked") {
    while (auto line = NextEvent(MsLeft(deadline) * std::chrono::milliseconds(1))) {
      res.body += line->dump() + "\n";
    }
    if (end_ != End::kClean) throw std::runtime_error("chunked body did not end cleanly");
    return res;
  }
  size_t length =
      std::stoul(res.headers.count("content-length") ? res.headers["content-length"] : "0");
  while (in_.size() < length) {
    if (!Fill(deadline)) throw std::runtime_error("body shorter than Content-Length");
  }
  res.body = in_.substr(0, length);
  in_.erase(0, length);
  return res;
}

RawHttpClient::Response RawHttpClient::StartStream(const std::string& target,
                                                   const std::string& token,
                                                   std::chrono::milliseconds timeout) {
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  Send(req + "Accept: application/json\r\n\r\n");
  end_ = End::kNone;
  return ReadHead(Clock::now() + timeout);
}

std::optional<nlohmann::json> RawHttpClient::NextEvent(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  if (end_ == End::kTimeout) end_ = End::kNone;
  while (true) {
    if (size_t nl = body_.find('\n'); nl != std::string::npos) {
      std::string line = body_.substr(0, nl);
      body_.erase(0, nl + 1);
      return nlohmann::json::parse(line);
    }
    if (end_ == End::kClean || end_ == End::kAbrupt) return std::nullopt;
    // Take one whole chunk from in_ if it is there: "<hex>\r\n<data>\r\n".
    size_t crlf = in_.find("\r\n");
    if (crlf != std::string::npos) {
      size_t size = std::stoul(in_.substr(0, crlf), nullptr, 16);
      if (size == 0 && in_.size() >= crlf + 4) {
        if (in_.compare(crlf + 2, 2, "\r\n") != 0) throw std::runtime_error("bad last chunk");
        in_.erase(0, crlf + 4);
        end_ = End::kClean;
        if (!body_.empty()) throw std::runtime_error("stream ended mid-line: " + body_);
        return std::nullopt;
      }
      if (size > 0 && in_.size() >= crlf + 2 + size + 2) {
        std::string data = in_.substr(crlf + 2, size);
        if (in_.compare(crlf + 2 + size, 2, "\r\n") != 0) {
          throw std::runtime_error("chunk not followed by CRLF");
        }
        in_.erase(0, crlf + 2 + size + 2);
        chunk_sizes_.push_back(size);
        if (data.back() != '\n') ++chunks_split_line_;
        if (std::count(data.begin(), data.end(), '\n') > 1) ++chunks_with_several_lines_;
        body_ += data;
        continue;
      }
    }
    if (!Fill(deadline)) return std::nullopt;
  }
}

namespace {

struct Spawned {
  int pid = -1;
  int out_fd = -1;
  int err_fd = -1;
};

Spawned Spawn(std::vector<std::string> argv_s, std::vector<std::string> env_s) {
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  Spawned s;
  int rc = posix_spawn(&s.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    throw std::runtime_error("posix_spawn " + argv_s[0] + ": " + std::strerror(rc));
  }
  s.out_fd = out[0];
  s.err_fd = err[0];
  return s;
}

// Reads what is there on the two pipes, waiting up to timeout_ms; closes (and sets -1) a pipe
// at EOF.
void ReadPipes(int& out_fd, int& err_fd, std::string& out, std::string& err, int timeout_ms) {
  pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  if (::poll(p, 2, timeout_ms) <= 0) return;
  char buf[65536];
  int* fds[2] = {&out_fd, &err_fd};
  std::string* dst[2] = {&out, &err};
  for (int i = 0; i < 2; ++i) {
    if (*fds[i] < 0 || (p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    long n = ::read(*fds[i], buf, sizeof(buf));
    if (n > 0) {
      dst[i]->append(buf, size_t(n));
    } else {
      ::close(*fds[i]);
      *fds[i] = -1;
    }
  }
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

}  // namespace

CommandResult RunKubectl(const TempDir& dir, const std::string& kubeconfig,
                         const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  Spawned s = Spawn(KubectlArgv(dir, kubeconfig, args), KubectlEnv(dir));
  CommandResult result;
  auto deadline = Clock::now() + timeout;
  while ((s.out_fd >= 0 || s.err_fd >= 0) && Clock::now() < deadline) {
    ReadPipes(s.out_fd, s.err_fd, result.out, result.err, std::min(MsLeft(deadline), 200));
  }
  bool timed_out = s.out_fd >= 0 || s.err_fd >= 0;
  if (timed_out) ::kill(s.pid, SIGKILL);
  int status = 0;
  ::waitpid(s.pid, &status, 0);
  if (s.out_fd >= 0) ::close(s.out_fd);
  if (s.err_fd >= 0) ::close(s.err_fd);
  result.exit_code = timed_out ? -1 : ExitCode(status);
  return result;
}

std::vector<std::string> KubectlArgv(const TempDir& dir, const std::string& kubeconfig,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv = {XLB_KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir",
                                   dir.File("kube-cache")};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::vector<std::string> KubectlEnv(const TempDir& dir) {
  std::filesystem::create_directories(dir.File("home"));
  return {"PATH=/usr/bin:/bin", "HOME=" + dir.File("home")};
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env) {
  Spawned s = Spawn(argv, env);
  pid_ = s.pid;
  out_fd_ = s.out_fd;
  err_fd_ = s.err_fd;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

void ChildProcess::Drain(int timeout_ms) {
  ReadPipes(out_fd_, err_fd_, out_, err_, timeout_ms);
}

bool ChildProcess::WaitForOutput(const std::function<bool(const std::string&)>& done,
                                 std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done(out_)) {
    if (Clock::now() >= deadline || (out_fd_ < 0 && err_fd_ < 0)) return false;
    Drain(std::min(MsLeft(deadline), 100));
  }
  return true;
}

bool ChildProcess::WaitForExit(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    int r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = ExitCode(status);
      pid_ = -1;
      break;
    }
    if (Clock::now() >= deadline) return false;
    Drain(50);
  }
  while (out_fd_ >= 0 || err_fd_ >= 0) Drain(100);
  return true;
}

std::string ChildProcess::err() {
  Drain(0);
  return err_;
}

std::vector<nlohmann::json> JsonDocuments(const std::string& text) {
  std::vector<nlohmann::json> docs;
  std::istringstream in(text);
  while (true) {
    in >> std::ws;
    if (in.peek() == EOF) break;
    nlohmann::json doc;
    try {
      in >> doc;
    } catch (const nlohmann::json::exception&) {
      break;  // a document still being written
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace xlb::testing
