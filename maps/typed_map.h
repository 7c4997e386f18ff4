// Typed C++ views of xlb's maps (layouts in xlb_abi.h), over libbpf's low-level bpf/bpf.h.
//
// A view does not own its fd: it lives no longer than whatever holds the map (the loaded
// XdpDatapath, or a UniqueFd from bpf_obj_get on a pin). Every call is one syscall and
// reports a Result; nothing throws, so the views are fine on the sync path.
#ifndef XLB_MAPS_TYPED_MAP_H
#define XLB_MAPS_TYPED_MAP_H

#include <bpf/bpf.h>
#include <bpf/libbpf.h>  // libbpf_num_possible_cpus
#include <linux/bpf.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "maps/xlb_abi.h"
#include "util/result.h"

namespace xlb {

// The part of a view that does not depend on its types: the fd and the map's name,
// which every error message carries.
class MapView {
 public:
  MapView(int fd, const char* name) : fd_(fd) {
    std::snprintf(name_.data(), name_.size(), "%s", name != nullptr ? name : "?");
  }

  int fd() const { return fd_; }
  const char* name() const { return name_.data(); }

  // What the kernel says about the map.
  Result<bpf_map_info> Info() const {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    int ret = bpf_obj_get_info_by_fd(fd_, &info, &len);
    if (ret < 0) {
      return Error::FromRet(ret, Call("bpf_obj_get_info_by_fd"));
    }
    return info;
  }

 protected:
  // A view over `fd` after checking that its key and value sizes are the ones the C++ side
  // compiles in, so a stale or foreign map is refused instead of misread.
  static Result<bpf_map_info> CheckShape(int fd, uint32_t key_size, uint32_t value_size) {
    auto info = MapView(fd, "map").Info();
    if (!info.ok()) {
      return info;
    }
    if (info->key_size != key_size || info->value_size != value_size) {
      return Error{EINVAL, std::string("map ") + info->name + ": key/value size " +
                               std::to_string(info->key_size) + "/" +
                               std::to_string(info->value_size) + ", expected " +
                               std::to_string(key_size) + "/" + std::to_string(value_size)};
    }
    return info;
  }

  std::string Call(const char* call) const { return std::string(call) + "(" + name() + ")"; }

 private:
  int fd_;
  std::array<char, BPF_OBJ_NAME_LEN> name_{};
};

// A map of K -> V (HASH, LRU_HASH, ARRAY).
template <typename K, typename V>
class TypedMap : public MapView {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "map keys and values are plain bytes");

 public:
  TypedMap(int fd, const char* name) : MapView(fd, name) {}

  static Result<TypedMap> FromFd(int fd) {
    XLB_ASSIGN_OR_RETURN(auto info, CheckShape(fd, sizeof(K), sizeof(V)));
    return TypedMap(fd, info.name);
  }

  // ENOENT (error().NotFound()) when the key is absent.
  Result<V> Lookup(const K& key) const {
    V value{};
    int ret = bpf_map_lookup_elem(fd(), &key, &value);
    if (ret < 0) {
      return Error::FromRet(ret, Call("bpf_map_lookup_elem"));
    }
    return value;
  }

  // flags: BPF_ANY, BPF_NOEXIST or BPF_EXIST.
  Result<void> Update(const K& key, const V& value, uint64_t flags = BPF_ANY) const {
    int ret = bpf_map_update_elem(fd(), &key, &value, flags);
    if (ret < 0) {
      return Error::FromRet(ret, Call("bpf_map_update_elem"));
    }
    return {};
  }

  // ENOENT when the key is absent; ARRAY maps cannot erase (EINVAL).
  Result<void> Erase(const K& key) const {
    int ret = bpf_map_delete_elem(fd(), &key);
    if (ret < 0) {
      return Error::FromRet(ret, Call("bpf_map_delete_elem"));
    }
    return {};
  }

  // Every key, in the kernel's order. A hash map that changes meanwhile may be walked from
  // its start again (the kernel's get_next_key restarts on a deleted key), so callers that
  // need a snapshot dedupe or read under their own exclusion.
  Result<std::vector<K>> Keys() const {
    std::vector<K> keys;
    K key{};
    const K* prev = nullptr;
    for (;;) {
      int ret = bpf_map_get_next_key(fd(), prev, &key);
      if (ret == -ENOENT) {
        return keys;
      }
      if (ret < 0) {
        return Error::FromRet(ret, Call("bpf_map_get_next_key"));
      }
      keys.push_back(key);
      prev = &keys.back();
    }
  }

  // fn(const K&, const V&) for every entry; a key erased between the walk and its lookup is
  // skipped.
  template <typename Fn>
  Result<void> ForEach(Fn&& fn) const {
    XLB_ASSIGN_OR_RETURN(auto keys, Keys());
    for (const K& key : keys) {
      auto value = Lookup(key);
      if (!value.ok()) {
        if (value.error().NotFound()) {
          continue;
        }
        return std::move(value).take_error();
      }
      fn(key, *value);
    }
    return {};
  }
};

// Sums of one key's per-CPU values.
inline xlb_counter SumCpus(std::span<const xlb_counter> per_cpu) {
  xlb_counter sum{};
  for (const auto& c : per_cpu) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

inline xlb_flow_counter SumCpus(std::span<const xlb_flow_counter> per_cpu) {
  xlb_flow_counter sum{};
  for (const auto& c : per_cpu) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
    sum.new_flows += c.new_flows;
  }
  return sum;
}

// A PERCPU_ARRAY of V: one V per possible CPU (libbpf_num_possible_cpus(), not the online
// count: the kernel always copies a slot for every possible CPU).
template <typename V>
class PerCpuMap : public MapView {
  static_assert(std::is_trivially_copyable_v<V>, "map values are plain bytes");
  // The kernel lays per-CPU values out at 8-byte strides; the ABI's counters are all
  // multiples of 8, so a std::vector<V> is exactly the syscall's buffer.
  static_assert(sizeof(V) % 8 == 0, "per-CPU values are 8-byte multiples");

 public:
  PerCpuMap(int fd, const char* name) : MapView(fd, name) {}

  static Result<PerCpuMap> FromFd(int fd) {
    XLB_ASSIGN_OR_RETURN(auto info, CheckShape(fd, sizeof(uint32_t), sizeof(V)));
    return PerCpuMap(fd, info.name);
  }

  static Result<uint32_t> NumCpus() {
    int n = libbpf_num_possible_cpus();
    if (n <= 0) {
      return Error::FromRet(n, "libbpf_num_possible_cpus");
    }
    return static_cast<uint32_t>(n);
  }

  // One value per possible CPU, indexed by CPU number.
  Result<std::vector<V>> Lookup(uint32_t key) const {
    XLB_ASSIGN_OR_RETURN(auto ncpu, NumCpus());
    std::vector<V> values(ncpu);
    int ret = bpf_map_lookup_elem(fd(), &key, values.data());
    if (ret < 0) {
      return Error::FromRet(ret, Call("bpf_map_lookup_elem") + " key " + std::to_string(key));
    }
    return values;
  }

  // The sum over CPUs (V is xlb_counter or xlb_flow_counter).
  Result<V> LookupSum(uint32_t key) const {
    XLB_ASSIGN_OR_RETURN(auto values, Lookup(key));
    return SumCpus(std::span<const V>(values));
  }

  // per_cpu.size() must be the number of possible CPUs.
  Result<void> Update(uint32_t key, std::span<const V> per_cpu) const {
    XLB_ASSIGN_OR_RETURN(auto ncpu, NumCpus());
    if (per_cpu.size() != ncpu) {
      return Error{EINVAL, Call("PerCpuMap::Update") + ": " + std::to_string(per_cpu.size()) +
                               " values for " + std::to_string(ncpu) + " possible CPUs"};
    }
    int ret = bpf_map_update_elem(fd(), &key, per_cpu.data(), BPF_ANY);
    if (ret < 0) {
      return Error::FromRet(ret, Call("bpf_map_update_elem") + " key " + std::to_string(key));
    }
    return {};
  }

  // The same value on every CPU; Fill(key, {}) resets a counter.
  Result<void> Fill(uint32_t key, const V& value) const {
    XLB_ASSIGN_OR_RETURN(auto ncpu, NumCpus());
    std::vector<V> values(ncpu, value);
    return Update(key, values);
  }
};

}  // namespace xlb

#endif  // XLB_MAPS_TYPED_MAP_H
