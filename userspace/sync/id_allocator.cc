#include "userspace/sync/id_allocator.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <string>

namespace xlb {

// ---- IdPool -----------------------------------------------------------------------------

IdPool::IdPool(uint32_t limit) : words_((limit + 63) / 64, 0), limit_(limit) {
  if (limit_ > 0) {
    words_[0] |= 1;  // id 0 is never handed out
  }
}

bool IdPool::taken(uint32_t id) const {
  return id >= limit_ || (words_[id / 64] >> (id % 64) & 1) != 0;
}

void IdPool::Take(uint32_t id) {
  if (id < limit_) {
    words_[id / 64] |= uint64_t{1} << (id % 64);
  }
}

void IdPool::Free(uint32_t id) {
  if (id == 0 || id >= limit_) {
    return;
  }
  words_[id / 64] &= ~(uint64_t{1} << (id % 64));
  lowest_maybe_free_ = std::min(lowest_maybe_free_, id);
}

std::optional<uint32_t> IdPool::TakeLowest() {
  for (uint32_t w = lowest_maybe_free_ / 64; w < words_.size(); ++w) {
    if (words_[w] == ~uint64_t{0}) {
      continue;
    }
    const uint32_t id = w * 64 + static_cast<uint32_t>(std::countr_one(words_[w]));
    if (id >= limit_) {
      break;
    }
    Take(id);
    lowest_maybe_free_ = id + 1;
    return id;
  }
  lowest_maybe_free_ = limit_;
  return std::nullopt;
}

// ---- IdAllocator ------------------------------------------------------------------------

size_t IdAllocator::IdentityHash::operator()(const BackendIdentity& id) const {
  uint64_t h =
      0x9e3779b97f4a7c15ULL ^ (uint64_t{id.cluster_id} << 24 | uint64_t{id.family} << 16 | id.port);
  for (const uint32_t w : id.addr) {
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return static_cast<size_t>(h);
}

IdAllocator::IdAllocator(const MapContents& held, const DesiredMaps* pending, StoreLimits limits)
    : held_(held),
      limits_(limits),
      backend_pool_(limits.max_backends),
      service_pool_(limits.max_services),
      listings_(limits.max_backends, 0),
      identity_of_id_(limits.max_backends),
      service_in_use_(limits.max_services, false) {
  // The backends of the maps and of the pending state, in ascending id order; a pending entry
  // replaces the maps' entry of its id.
  const std::map<uint32_t, xlb_backend> none;
  const std::map<uint32_t, xlb_backend>& waiting = pending != nullptr ? pending->backends : none;
  auto h = held_.backends.begin();
  auto p = waiting.begin();
  while (h != held_.backends.end() || p != waiting.end()) {
    if (p != waiting.end() && (h == held_.backends.end() || p->first <= h->first)) {
      if (h != held_.backends.end() && h->first == p->first) {
        ++h;
      }
      Own(p->first, BackendIdentity::Of(p->second), true);
      ++p;
    } else {
      Own(h->first, BackendIdentity::Of(h->second), (h->second.flags & XLB_BE_F_VALID) != 0);
      ++h;
    }
  }
  auto take_service = [this](uint32_t id) {
    service_pool_.Take(id);
    released_services_.push_back(id);
  };
  for (const auto& [key, service] : held_.services) {
    take_service(service.id);
  }
  for (const auto& [id, digest] : held_.tables) {
    take_service(id);
  }
  if (pending != nullptr) {
    for (const auto& [key, service] : pending->services) {
      pending_service_of_key_[key] = service.id;
      take_service(service.id);
    }
    for (const auto& [id, recipe] : pending->tables) {
      take_service(id);
    }
  }
}

void IdAllocator::Own(uint32_t id, const BackendIdentity& identity, bool taken) {
  if (id >= identity_of_id_.size()) {
    return;  // beyond this datapath's limit: never handed out again
  }
  if (taken) {
    backend_pool_.Take(id);
    released_backends_.push_back(id);
  }
  // An identity owning several ids (re-added while its old id was still being drained) keeps a
  // taken one, else the lowest.
  auto [it, inserted] = id_of_identity_.emplace(identity, id);
  if (!inserted) {
    if (!taken || backend_pool_.taken(it->second)) {
      return;
    }
    identity_of_id_[it->second] = {};
    it->second = id;
  }
  identity_of_id_[id] = identity;
}

std::optional<uint32_t> IdAllocator::ListReturningBackend(const BackendIdentity& identity) {
  auto known = id_of_identity_.find(identity);
  if (known == id_of_identity_.end()) {
    return std::nullopt;
  }
  backend_pool_.Take(known->second);  // its own old id: safe to take back
  ++listings_[known->second];
  return known->second;
}

Result<uint32_t> IdAllocator::ListBackend(const BackendIdentity& identity) {
  // One hash operation finds its own id or makes room for a new one.
  auto [entry, fresh] = id_of_identity_.try_emplace(identity, XLB_ID_NONE);
  if (!fresh) {  // its own id (ListReturningBackend)
    backend_pool_.Take(entry->second);
    ++listings_[entry->second];
    return entry->second;
  }
  const std::optional<uint32_t> id = backend_pool_.TakeLowest();
  if (!id) {
    id_of_identity_.erase(entry);
    return Error{ENOSPC,
                 "backend ids: all " + std::to_string(limits_.max_backends - 1) + " in use"};
  }
  // The id may have belonged to an identity that is gone: that one cannot take it back now.
  // (Not `entry`: it holds no id yet.)
  BackendIdentity& owner = identity_of_id_[*id];
  if (owner != BackendIdentity{}) {
    auto old = id_of_identity_.find(owner);
    if (old != id_of_identity_.end() && old->second == *id) {
      id_of_identity_.erase(old);
    }
  }
  owner = identity;
  entry->second = *id;
  ++listings_[*id];
  return *id;
}

bool IdAllocator::UnlistBackend(uint32_t id) {
  if (--listings_[id] != 0) {
    return false;
  }
  released_backends_.push_back(id);
  return true;
}

bool IdAllocator::ServiceInUse(uint32_t id) const {
  return id < service_in_use_.size() && service_in_use_[id];
}

std::optional<uint32_t> IdAllocator::UseReturningService(std::span<const xlb_service_key> keys,
                                                         const ServiceIdOfKey& prior) {
  for (const xlb_service_key& key : keys) {
    uint32_t id = XLB_ID_NONE;
    if (auto it = prior.find(key); it != prior.end()) {
      id = it->second;
    } else if (auto p = pending_service_of_key_.find(key); p != pending_service_of_key_.end()) {
      id = p->second;
    } else if (auto h = held_.services.find(key); h != held_.services.end()) {
      id = h->second.id;
    }
    if (id != XLB_ID_NONE && !ServiceInUse(id)) {
      service_pool_.Take(id);
      if (id >= service_in_use_.size()) {
        service_in_use_.resize(id + 1, false);
      }
      service_in_use_[id] = true;
      return id;
    }
  }
  return std::nullopt;
}

Result<uint32_t> IdAllocator::UseNewService() {
  const std::optional<uint32_t> id = service_pool_.TakeLowest();
  if (!id) {
    return Error{ENOSPC,
                 "service ids: all " + std::to_string(limits_.max_services - 1) + " in use"};
  }
  service_in_use_[*id] = true;
  return *id;
}

void IdAllocator::ReleaseService(uint32_t id) {
  if (id < service_in_use_.size()) {
    service_in_use_[id] = false;
  }
  released_services_.push_back(id);
}

void IdAllocator::Commit() {
  for (const uint32_t id : released_backends_) {
    if (listings_[id] != 0) {
      continue;  // listed again
    }
    auto held = held_.backends.find(id);
    if (held != held_.backends.end() && (held->second.flags & XLB_BE_F_VALID) != 0) {
      continue;  // still valid in the maps (not synced after all)
    }
    backend_pool_.Free(id);
  }
  released_backends_.clear();
  for (const uint32_t id : released_services_) {
    if (!ServiceInUse(id) && held_.tables.count(id) == 0) {
      service_pool_.Free(id);
    }
  }
  released_services_.clear();
}

}  // namespace xlb
