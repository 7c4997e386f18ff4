#include "userspace/kube/client/credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "userspace/kube/client/text_util.h"

extern char** environ;

namespace xlb::kube {

TokenFileCredential::TokenFileCredential(std::string path, std::string what,
                                         std::chrono::milliseconds recheck, Credential extra)
    : path_(std::move(path)),
      what_(std::move(what)),
      recheck_(recheck),
      credential_(std::move(extra)) {}

KubeResult<Credential> TokenFileCredential::Current() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (loaded_ && now < next_check_) return credential_;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    const int err = errno;
    // A token read before stays in use: the kubelet may be in the middle of a swap.
    if (loaded_) return credential_;
    return KubeError{what_ + " " + path_ + ": " + std::strerror(err)};
  }
  next_check_ = now + recheck_;
  if (loaded_ && st.st_mtim.tv_sec == stat_.st_mtim.tv_sec &&
      st.st_mtim.tv_nsec == stat_.st_mtim.tv_nsec && st.st_size == stat_.st_size &&
      st.st_ino == stat_.st_ino) {
    return credential_;
  }
  auto text = ReadFileText(path_, what_);
  if (!text) {
    if (loaded_) return credential_;
    return text.error();
  }
  std::string token = TrimWhitespace(*text);
  if (token.empty()) {
    if (loaded_) return credential_;
    return KubeError{what_ + " " + path_ + ": the file is empty"};
  }
  credential_.token = std::move(token);
  stat_ = st;
  loaded_ = true;
  return credential_;
}

void TokenFileCredential::Invalidate() {
  std::lock_guard lock(mu_);
  // Re-read now, even when the mtime looks the same (a rewrite within one timestamp tick).
  next_check_ = {};
  stat_ = {};
}

ExecCredentialPlugin::ExecCredentialPlugin(ExecPluginConfig config, Clock clock)
    : config_(std::move(config)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

KubeResult<Credential> ExecCredentialPlugin::Current() {
  std::lock_guard lock(mu_);
  if (cached_ && (!expires_ || clock_() < *expires_)) return *cached_;
  cached_.reset();
  expires_.reset();
  auto fresh = Run();
  if (fresh) cached_ = *fresh;
  return fresh;
}

void ExecCredentialPlugin::Invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
  expires_.reset();
}

int ExecCredentialPlugin::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

namespace {

// The most an exec plugin may print: an ExecCredential is a token or a certificate and key.
constexpr size_t kMaxExecOutputBytes = size_t{4} << 20;

// Closes the fd it holds.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

std::string ExitText(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

}  // namespace

KubeResult<Credential> ExecCredentialPlugin::Run() {
  ++runs_;
  const std::string& what = config_.what;
  if (config_.api_version != "client.authentication.k8s.io/v1" &&
      config_.api_version != "client.authentication.k8s.io/v1beta1") {
    return KubeError{what + ".apiVersion: \"" + config_.api_version +
                     "\" is not supported (client.authentication.k8s.io/v1 or v1beta1)"};
  }

  nlohmann::json info = {{"apiVersion", config_.api_version},
                         {"kind", "ExecCredential"},
                         {"spec", {{"interactive", false}}}};
  if (config_.provide_cluster_info) {
    std::string ca_data;  // base64 of the CA, as client-go sends certificate-authority-data
    static const char* kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const std::string& in = config_.cluster_ca_pem;
    for (size_t i = 0; i < in.size(); i += 3) {
      unsigned v = static_cast<unsigned char>(in[i]) << 16;
      if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
      if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
      ca_data.push_back(kAlphabet[(v >> 18) & 63]);
      ca_data.push_back(kAlphabet[(v >> 12) & 63]);
      ca_data.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
      ca_data.push_back(i + 2 < in.size() ? kAlphabet[v & 63] : '=');
    }
    info["spec"]["cluster"] = {{"server", config_.cluster_server},
                               {"certificate-authority-data", ca_data}};
  }

  // The environment: ours, then the configured entries (they win), then the exec info.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool overridden = name == "KUBERNETES_EXEC_INFO";
    for (const auto& [n, v] : config_.env) overridden = overridden || n == name;
    if (!overridden) env_strings.emplace_back(entry);
  }
  for (const auto& [n, v] : config_.env) env_strings.push_back(n + "=" + v);
  env_strings.push_back("KUBERNETES_EXEC_INFO=" + info.dump());
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings{config_.command};
  argv_strings.insert(argv_strings.end(), config_.args.begin(), config_.args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return KubeError{what + ": pipe: " + std::strerror(errno)};
  }
  FdCloser read_end{pipe_fds[0]};
  FdCloser write_end{pipe_fds[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, 1);
  pid_t pid = -1;
  const int spawn_err =
      ::posix_spawnp(&pid, config_.command.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_err != 0) {
    return KubeError{what + ".command: cannot run \"" + config_.command +
                     "\": " + std::strerror(spawn_err)};
  }
  ::close(write_end.fd);
  write_end.fd = -1;

  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + config_.timeout;
  bool timed_out = false;
  bool too_long = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      timed_out = true;
      break;
    }
    char buf[4096];
    const ssize_t n = ::read(read_end.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
    // No credential is this large. The plugin may go on writing into a full pipe and never
    // exit: it is killed, as at the timeout, so that the wait below ends.
    if (output.size() > kMaxExecOutputBytes) {
      too_long = true;
      break;
    }
  }
  if (timed_out || too_long) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return KubeError{what + ": \"" + config_.command + "\" did not answer within " +
                     std::to_string(config_.timeout.count()) + " ms"};
  }
  if (too_long) {
    return KubeError{what + ": \"" + config_.command + "\" printed more than " +
                     std::to_string(kMaxExecOutputBytes) + " bytes"};
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return KubeError{what + ": \"" + config_.command + "\" " + ExitText(status)};
  }

  auto doc = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return KubeError{what + ": \"" + config_.command + "\" did not print an ExecCredential (JSON)"};
  }
  if (doc.value("kind", "") != "ExecCredential") {
    return KubeError{what + ": output kind is \"" + doc.value("kind", "") +
                     "\", expected ExecCredential"};
  }
  if (doc.value("apiVersion", "") != config_.api_version) {
    return KubeError{what + ": output apiVersion \"" + doc.value("apiVersion", "") +
                     "\" differs from the configured \"" + config_.api_version + "\""};
  }
  auto status_it = doc.find("status");
  if (status_it == doc.end() || !status_it->is_object()) {
    return KubeError{what + ": output has no status"};
  }
  const auto& st = *status_it;
  Credential credential;
  auto string_field = [&](const char* name) -> std::string {
    auto it = st.find(name);
    return it != st.end() && it->is_string() ? it->get<std::string>() : "";
  };
  credential.token = string_field("token");
  credential.client_cert_pem = string_field("clientCertificateData");
  credential.client_key_pem = string_field("clientKeyData");
  if (credential.client_cert_pem.empty() != credential.client_key_pem.empty()) {
    return KubeError{what + ": status has only one of clientCertificateData and clientKeyData"};
  }
  if (credential.token.empty() && credential.client_cert_pem.empty()) {
    return KubeError{what + ": status has neither token nor clientCertificateData"};
  }
  const std::string expiry = string_field("expirationTimestamp");
  if (!expiry.empty()) {
    auto when = ParseRfc3339(expiry);
    if (!when) {
      return KubeError{what + ": status.expirationTimestamp \"" + expiry + "\" is not RFC 3339"};
    }
    expires_ = *when;
  }
  return credential;
}

}  // namespace xlb::kube
