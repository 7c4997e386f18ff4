#include "userspace/cli/table.h"

#include <algorithm>

namespace xlb::cli {

void Table::Add(std::vector<std::string> row) {
  row.resize(columns_.size());
  rows_.push_back(std::move(row));
}

std::string Table::Render() const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].header.size();
    for (const auto& row : rows_) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const std::string& cell = cells[c];
      const std::string pad(width[c] - std::min(width[c], cell.size()), ' ');
      if (c > 0) {
        l += "  ";
      }
      l += columns_[c].align == Align::kRight ? pad + cell : cell + pad;
    }
    while (!l.empty() && l.back() == ' ') {
      l.pop_back();
    }
    out += l + "\n";
  };
  std::vector<std::string> header;
  for (const Column& c : columns_) {
    header.push_back(c.header);
  }
  line(header);
  for (const auto& row : rows_) {
    line(row);
  }
  return out;
}

void Table::Print(std::FILE* out) const {
  std::fputs(Render().c_str(), out);
}

}  // namespace xlb::cli
