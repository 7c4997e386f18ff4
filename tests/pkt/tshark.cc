#include "tshark.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "pcap.h"
#include "temp_dir.h"

extern char** environ;

namespace xlb::pkt {
namespace {

using Json = nlohmann::ordered_json;  // keeps tshark's tree order: outer headers first

constexpr uint32_t kGroupChecksum = 0x01000000;   // PI_CHECKSUM
constexpr uint32_t kGroupMalformed = 0x07000000;  // PI_MALFORMED

// The dissectors left on: L2 to L4, and tshark's own pseudo-protocols (expert, malformed).
bool KeepEnabled(const std::string& proto, const std::vector<std::string>& extra) {
  static const std::set<std::string> kKeep = {
      "frame", "eth",          "ethertype",    "vlan",         "ieee8021ad",   "ip",
      "ipv6",  "ipv6.hopopts", "ipv6.dstopts", "ipv6.fraghdr", "ipv6.routing", "ah",
      "tcp",   "udp",          "icmp",         "icmpv6",       "data"};
  return kKeep.count(proto) != 0 || proto.rfind("ipv6.routing.type.", 0) == 0 ||
         proto.rfind("_ws.", 0) == 0 || std::find(extra.begin(), extra.end(), proto) != extra.end();
}

// Keys under which the JSON tree nests a protocol layer inside another (an ICMP error's
// quote); top-level keys of "layers" are always layers.
bool IsNestedLayer(const std::string& key, const std::vector<std::string>& extra) {
  static const std::set<std::string> kLayers = {"ip",   "ipv6",   "tcp", "udp",
                                                "icmp", "icmpv6", "ah",  "data"};
  return kLayers.count(key) != 0 || std::find(extra.begin(), extra.end(), key) != extra.end();
}

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] with argv (no shell), `env` added to our environment, stdin from /dev/null,
// and collects stdout and stderr.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (env.count(key) == 0) {
      env_strings.push_back(entry);
    }
  }
  for (const auto& [key, value] : env) {
    env_strings.push_back(std::string(key).append("=").append(value));
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  argvp.reserve(args.size() + 1);
  for (std::string& s : args) {
    argvp.push_back(s.data());
  }
  argvp.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int saved = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(saved));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argvp[0], &actions, nullptr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }

  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) {
      close(p.fd);
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::vector<std::string> AllProtocols(const std::string& tshark, const std::string& config_dir) {
  static std::mutex mu;
  static std::map<std::string, std::vector<std::string>> cache;
  const std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(tshark);
  if (it != cache.end()) {
    return it->second;
  }
  const ProcessResult r =
      RunProcess({tshark, "-G", "protocols"}, {{"WIRESHARK_CONFIG_DIR", config_dir}});
  if (r.exit_code != 0) {
    throw std::runtime_error(tshark + " -G protocols failed: " + r.err);
  }
  std::vector<std::string> protos;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    // "Full name\tShort name\tfilter name"
    const size_t tab = line.rfind('\t');
    if (tab != std::string::npos) {
      protos.push_back(line.substr(tab + 1));
    }
  }
  if (protos.empty()) {
    throw std::runtime_error(tshark + " -G protocols listed nothing");
  }
  return cache.emplace(tshark, std::move(protos)).first->second;
}

std::string StatusName(const std::string& value) {
  static const std::map<std::string, std::string> kNames = {
      {"0", "Bad"}, {"1", "Good"}, {"2", "Unverified"}, {"3", "Not present"}, {"4", "Illegal"}};
  auto it = kNames.find(value);
  return it == kNames.end() ? value : it->second;
}

uint32_t ToU32(const Json& j) {
  if (j.is_string()) {
    return static_cast<uint32_t>(std::strtoul(j.get<std::string>().c_str(), nullptr, 0));
  }
  return j.is_number() ? j.get<uint32_t>() : 0;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The checksum verdicts and checksum expert items of one protocol layer.
struct LayerScan {
  std::string path;
  std::vector<TsharkChecksum> statuses;
  std::vector<std::string> checksum_messages;
};

class FrameParser {
 public:
  FrameParser(TsharkFrame& frame, const std::vector<std::string>& extra)
      : frame_(frame), extra_(extra) {}

  void Layers(const Json& layers) {
    for (const auto& item : layers.items()) {
      const std::string& key = item.key();
      ForEachObject(item.value(), [&](const Json& obj) {
        if (key == "frame") {
          Frame(obj);
        } else {
          Layer(obj, key);
        }
      });
    }
    Problems();
  }

 private:
  template <typename F>
  static void ForEachObject(const Json& value, F&& fn) {
    if (value.is_object()) {
      fn(value);
    } else if (value.is_array()) {
      for (const Json& e : value) {
        if (e.is_object()) {
          fn(e);
        }
      }
    }
  }

  void Frame(const Json& obj) {
    if (obj.contains("frame.number")) {
      frame_.number = static_cast<int>(ToU32(obj["frame.number"]));
    }
    if (obj.contains("frame.protocols") && obj["frame.protocols"].is_string()) {
      frame_.protocols = obj["frame.protocols"].get<std::string>();
    }
  }

  void Layer(const Json& obj, const std::string& path) {
    scans_.push_back(LayerScan{path, {}, {}});
    Walk(obj, path, scans_.size() - 1);
  }

  void Walk(const Json& obj, const std::string& path, size_t scan) {
    for (const auto& item : obj.items()) {
      const std::string& key = item.key();
      const Json& value = item.value();
      if (key == "_ws.expert") {
        ForEachObject(value, [&](const Json& e) { Expert(e, path, scan); });
      } else if (value.is_object() ||
                 (value.is_array() && !value.empty() && value[0].is_object())) {
        ForEachObject(value, [&](const Json& child) {
          if (IsNestedLayer(key, extra_)) {
            Layer(child, std::string(path).append("/").append(key));
          } else {
            Walk(child, path, scan);
          }
        });
      } else if (value.is_array()) {
        for (const Json& v : value) {
          Field(key, v, path, scan);
        }
      } else {
        Field(key, value, path, scan);
      }
    }
  }

  void Field(const std::string& key, const Json& value, const std::string& path, size_t scan) {
    if (!value.is_string()) {
      return;
    }
    const std::string& v = value.get_ref<const std::string&>();
    if (key == "ip.src") {
      frame_.ip_src.push_back(v);
    } else if (key == "ip.dst") {
      frame_.ip_dst.push_back(v);
    } else if (key == "ipv6.src") {
      frame_.ipv6_src.push_back(v);
    } else if (key == "ipv6.dst") {
      frame_.ipv6_dst.push_back(v);
    } else if (key == "tcp.srcport") {
      frame_.tcp_sport.push_back(static_cast<uint16_t>(ToU32(value)));
    } else if (key == "tcp.dstport") {
      frame_.tcp_dport.push_back(static_cast<uint16_t>(ToU32(value)));
    } else if (key == "udp.srcport") {
      frame_.udp_sport.push_back(static_cast<uint16_t>(ToU32(value)));
    } else if (key == "udp.dstport") {
      frame_.udp_dport.push_back(static_cast<uint16_t>(ToU32(value)));
    } else if (EndsWith(key, ".checksum.status")) {
      TsharkChecksum c{path, key, StatusName(v)};
      frame_.checksums.push_back(c);
      scans_[scan].statuses.push_back(std::move(c));
    }
  }

  void Expert(const Json& e, const std::string& path, size_t scan) {
    TsharkExpert x;
    x.layer = path;
    if (e.contains("_ws.expert.message") && e["_ws.expert.message"].is_string()) {
      x.message = e["_ws.expert.message"].get<std::string>();
    }
    if (e.contains("_ws.expert.severity")) {
      x.severity = ToU32(e["_ws.expert.severity"]);
    }
    if (e.contains("_ws.expert.group")) {
      x.group = ToU32(e["_ws.expert.group"]);
    }
    if (x.group == kGroupChecksum) {
      scans_[scan].checksum_messages.push_back(x.message);
    }
    if (x.group == kGroupMalformed) {
      frame_.malformed.push_back(x.message);
    }
    frame_.experts.push_back(std::move(x));
  }

  // One problem per bad status, carrying the layer's checksum expert message; checksum
  // expert items without a bad status are problems of their own.
  void Problems() {
    for (const LayerScan& s : scans_) {
      const size_t slash = s.path.rfind('/');
      const std::string last = slash == std::string::npos ? s.path : s.path.substr(slash + 1);
      const bool quoted = slash != std::string::npos &&
                          (s.path.rfind("icmp/", 0) == 0 || s.path.rfind("icmpv6/", 0) == 0 ||
                           s.path.find("/icmp/") != std::string::npos ||
                           s.path.find("/icmpv6/") != std::string::npos);
      const bool quoted_l4 =
          quoted && (last == "tcp" || last == "udp" || last == "icmp" || last == "icmpv6");
      size_t messages = 0;
      for (const TsharkChecksum& c : s.statuses) {
        if (c.status != "Bad" && c.status != "Illegal") {
          continue;
        }
        TsharkChecksumProblem p{s.path, c.field, c.status, "", quoted_l4};
        if (messages < s.checksum_messages.size()) {
          p.message = s.checksum_messages[messages++];
        }
        frame_.checksum_problems.push_back(std::move(p));
      }
      for (; messages < s.checksum_messages.size(); ++messages) {
        frame_.checksum_problems.push_back(
            TsharkChecksumProblem{s.path, "", "", s.checksum_messages[messages], quoted_l4});
      }
    }
  }

  TsharkFrame& frame_;
  const std::vector<std::string>& extra_;
  std::vector<LayerScan> scans_;
};

}  // namespace

std::string TsharkFrame::Checksum(std::string_view layer) const {
  for (const TsharkChecksum& c : checksums) {
    if (c.layer == layer) {
      return c.status;
    }
  }
  return "";
}

std::vector<TsharkFrame> TsharkDecode(const std::string& pcap_path, const TsharkOptions& opts) {
  if (!std::filesystem::exists(pcap_path)) {
    throw std::runtime_error("no such pcap: " + pcap_path);
  }
  const TempDir config("xlb-tshark");  // private WIRESHARK_CONFIG_DIR
  {
    std::ofstream disabled(config.path() + "/disabled_protos");
    for (const std::string& proto : AllProtocols(opts.tshark, config.path())) {
      if (!KeepEnabled(proto, opts.extra_protocols)) {
        disabled << proto << '\n';
      }
    }
    if (!disabled) {
      throw std::runtime_error("cannot write " + config.path() + "/disabled_protos");
    }
  }
  std::vector<std::string> argv = {
      opts.tshark,
      "-n",  // no name resolution
      "-o",
      "ip.check_checksum:TRUE",
      "-o",
      "tcp.check_checksum:TRUE",
      "-o",
      "udp.check_checksum:TRUE",
      "-o",
      "tcp.analyze_sequence_numbers:FALSE",  // no flow-analysis chatter between tests
  };
  argv.insert(argv.end(), opts.extra_args.begin(), opts.extra_args.end());
  for (const char* arg : {
           "-T", "json",
           "--no-duplicate-keys",  // IP-in-IP: "ip": [outer, inner]
           "-r"}) {
    argv.emplace_back(arg);
  }
  argv.push_back(pcap_path);
  const ProcessResult r = RunProcess(argv, {{"WIRESHARK_CONFIG_DIR", config.path()}});
  if (r.exit_code != 0) {
    throw std::runtime_error("tshark exited with " + std::to_string(r.exit_code) + ": " + r.err);
  }
  const Json doc = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_array()) {
    throw std::runtime_error("tshark printed no JSON array: " + r.out.substr(0, 200) + r.err);
  }
  std::vector<TsharkFrame> frames;
  for (const Json& packet : doc) {
    TsharkFrame frame;
    const Json* layers = &packet;
    for (const char* key : {"_source", "layers"}) {
      if (!layers->contains(key)) {
        throw std::runtime_error("tshark JSON without _source.layers");
      }
      layers = &(*layers)[key];
    }
    FrameParser(frame, opts.extra_protocols).Layers(*layers);
    frames.push_back(std::move(frame));
  }
  return frames;
}

std::vector<TsharkFrame> TsharkDecodeFrames(std::span<const std::vector<uint8_t>> frames,
                                            const TsharkOptions& opts) {
  const TempDir dir("xlb-pcap");
  const std::string pcap = dir.File("frames.pcap");
  WritePcap(pcap, frames);
  return TsharkDecode(pcap, opts);
}

size_t CountBadChecksums(const TsharkFrame& frame) {
  return static_cast<size_t>(std::count_if(frame.checksum_problems.begin(),
                                           frame.checksum_problems.end(),
                                           [](const auto& p) { return !p.quoted_l4; }));
}

size_t CountBadChecksums(const std::vector<TsharkFrame>& frames) {
  size_t n = 0;
  for (const TsharkFrame& f : frames) {
    n += CountBadChecksums(f);
  }
  return n;
}

}  // namespace xlb::pkt
