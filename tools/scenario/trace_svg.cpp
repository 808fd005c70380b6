#include "tools/scenario/trace_svg.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>
#include <utility>

#include "tools/scenario/calibration.h"
#include "tools/scenario/text_format.h"

namespace adascale::scenario {
namespace {

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// Branch ranks for the picture: fewest MACs at the bottom.
std::vector<int> branch_ranks(const std::vector<BranchCosts>& costs) {
  std::vector<int> order(costs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return size_key(costs[a]) < size_key(costs[b]); });
  std::vector<int> rank(costs.size());
  for (size_t r = 0; r < order.size(); ++r)
    rank[static_cast<size_t>(order[r])] = static_cast<int>(r);
  return rank;
}

double nice_step(double range, int ticks) {
  const double raw = range / std::max(1, ticks);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

// Branch-axis labels: 10 px text, at least 12 px apart (centre to centre).
constexpr double kBranchFontPx = 10;
constexpr double kBranchLabelPitch = 12;
// The branch panel grows with the branch count up to this, so that up to 33 branches all get a
// label at their own row; past it only some do (every branch the run used, always).
constexpr double kMinBranchPanel = 150, kMaxBranchPanel = 33 * kBranchLabelPitch;

// Where the panels are; the branch panel's height depends on the branch count.
struct Layout {
  double width = 1000, left = 150, right = 20, plot_w = 1000 - 150 - 20;
  double lat_top = 60, lat_h = 220, br_top = 310, br_h = kMinBranchPanel, acc_top = 0, acc_h = 150;
  double height = 0, duration_ms = 0;
  double x_of(double t_ms) const {
    return left + plot_w * std::clamp(t_ms / duration_ms, 0.0, 1.0);
  }
};

// a sans-serif character at the branch labels' size is about this wide on average; the left
// margin grows so that the longest branch name is not cut at the picture's edge
constexpr double kBranchCharPx = 6.0;

Layout make_layout(const Scenario& s, size_t branches, size_t used_branches, size_t longest_name) {
  Layout l;
  l.left = std::max(l.left, 16 + kBranchCharPx * static_cast<double>(longest_name));
  l.width = l.left + l.plot_w + l.right;
  l.br_h = std::clamp(static_cast<double>(branches) * kBranchLabelPitch, kMinBranchPanel,
                      kMaxBranchPanel);
  // the used branches' labels fit even when they are many
  l.br_h = std::max(l.br_h, static_cast<double>(used_branches) * kBranchLabelPitch);
  l.acc_top = l.br_top + l.br_h + 30;
  l.height = l.acc_top + l.acc_h + 50;
  l.duration_ms = s.duration_s * 1000;
  return l;
}

struct BranchLabel {
  int branch;
  double row_y, label_y;  // centre of the branch's row, centre of its label
};

// Which branches get a label and where: the used ones first (most requests first), then the
// smallest and the largest, then the others bottom up, each only where its row leaves room. The
// labels are then moved apart, top to bottom and back, to at least kBranchLabelPitch, within
// [lo, hi]; a moved label gets a leader line to its row.
std::vector<BranchLabel> place_branch_labels(const std::vector<double>& row_y,
                                             const std::vector<int>& rank,
                                             const std::vector<size_t>& requests, double lo,
                                             double hi) {
  const size_t n = row_y.size();
  std::vector<int> order(n);
  for (size_t b = 0; b < n; ++b) order[b] = static_cast<int>(b);
  auto priority = [&](int b) {
    const size_t i = static_cast<size_t>(b);
    const bool extreme = rank[i] == 0 || rank[i] == static_cast<int>(n) - 1;
    return std::make_tuple(requests[i] > 0 ? 0
                           : extreme       ? 1
                                           : 2,
                           -static_cast<double>(requests[i]), rank[i]);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return priority(a) < priority(b); });
  const size_t capacity = static_cast<size_t>(std::floor((hi - lo) / kBranchLabelPitch)) + 1;
  std::vector<BranchLabel> labels;
  for (int b : order) {
    const double y = row_y[static_cast<size_t>(b)];
    const bool used = requests[static_cast<size_t>(b)] > 0;
    const bool room = std::all_of(labels.begin(), labels.end(), [&](const BranchLabel& l) {
      return std::fabs(l.row_y - y) >= kBranchLabelPitch;
    });
    if (labels.size() < capacity && (used || room)) labels.push_back({b, y, y});
  }
  std::sort(labels.begin(), labels.end(),
            [](const BranchLabel& a, const BranchLabel& b) { return a.row_y < b.row_y; });
  for (size_t i = 0; i < labels.size(); ++i)
    labels[i].label_y =
        std::max({labels[i].row_y, lo, i > 0 ? labels[i - 1].label_y + kBranchLabelPitch : lo});
  for (size_t i = labels.size(); i-- > 0;)
    labels[i].label_y =
        std::min({labels[i].label_y, hi,
                  i + 1 < labels.size() ? labels[i + 1].label_y - kBranchLabelPitch : hi});
  return labels;
}

void write_title(std::ostringstream& o, const PolicyRun& run, const PolicySummary& sum,
                 const Scenario& s, const Layout& l) {
  o << format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
      l.width, l.height, l.width, l.height);
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << l.left << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">"
    << xml_escape(s.name + ": " + policy_name(run.policy) +
                  (run.fixed_branch >= 0 ? " (" + sum.branch + ")" : ""))
    << "</text>\n";
  const double viol_pct = sum.requests ? 100.0 * sum.violations / sum.requests : 0;
  const double acc_pct = sum.images ? 100.0 * sum.correct / sum.images : 0;
  o << "<text x=\"" << l.left << "\" y=\"34\">"
    << xml_escape(format("%zu requests of %d images, %.1f%% over the latency budget, accuracy "
                         "%.2f%%, %zu switches",
                         sum.requests, s.frame_images, viol_pct, acc_pct, sum.switches))
    << "</text>\n";
}

// Contention phases (burners shaded orange, darker with more; balloons blue), event markers,
// panel frames and titles.
void write_phases_and_panels(std::ostringstream& o, const PolicyRun& run, const Layout& l) {
  const double bottom = l.acc_top + l.acc_h;
  for (size_t i = 0; i < run.changes.size(); ++i) {
    const StateChange& c = run.changes[i];
    const double begin = c.t_ms;
    const double end = i + 1 < run.changes.size() ? run.changes[i + 1].t_ms : l.duration_ms;
    if (end <= begin) continue;
    const double x0 = l.x_of(begin), x1 = l.x_of(end);
    if (c.burners > 0)
      o << format(
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f28e2b\" "
          "fill-opacity=\"%.2f\"/>\n",
          x0, l.lat_top, x1 - x0, bottom - l.lat_top, std::min(0.45, 0.1 * c.burners));
    if (c.balloon_mib > 0)
      o << format(
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4e79a7\" "
          "fill-opacity=\"0.15\"/>\n",
          x0, l.lat_top, x1 - x0, bottom - l.lat_top);
  }
  // Event markers with their action, staggered so that close events stay readable.
  for (size_t i = 1; i < run.changes.size(); ++i) {
    const double x = l.x_of(run.changes[i].t_ms);
    o << format(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
        "stroke-dasharray=\"3,3\" stroke-width=\"0.8\"/>\n",
        x, l.lat_top - 8, x, bottom);
    o << format("<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"#333\">", x + 2,
                l.lat_top - 10 - 9.0 * ((i - 1) % 2))
      << xml_escape(run.changes[i].text) << "</text>\n";
  }
  auto panel = [&](double top, double h, const std::string& title) {
    o << format(
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
        "stroke=\"#999\"/>\n",
        l.left, top, l.plot_w, h);
    o << format("<text x=\"10\" y=\"%.1f\" font-weight=\"bold\">", top - 8) << xml_escape(title)
      << "</text>\n";
  };
  panel(l.lat_top, l.lat_h, "latency (ms/request)");
  panel(l.br_top, l.br_h, "branch");
  panel(l.acc_top, l.acc_h, "rolling accuracy (1 s)");
}

// Latency: observed (red when over budget), predicted, budget.
void write_latency_panel(std::ostringstream& o, const PolicyRun& run,
                         const std::vector<TraceRow>& rows, const PolicySummary& sum,
                         const Scenario& s, const Layout& l) {
  double y_max = 0;
  for (const StateChange& c : run.changes)
    if (std::isfinite(c.budgets.latency_ms)) y_max = std::max(y_max, 2.0 * c.budgets.latency_ms);
  if (y_max <= 0) y_max = 1.2 * std::max(1e-3, sum.p99_latency_ms);
  auto y_lat = [&](double ms) {
    return l.lat_top + l.lat_h * (1 - std::clamp(ms / y_max, 0.0, 1.0));
  };
  const double y_step = nice_step(y_max, 4);
  for (double v = 0; v <= y_max + 1e-9; v += y_step)
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", l.left - 4,
                y_lat(v) + 4, v);
  // At most about 4000 dots (every violation is drawn) and two line points per pixel column, so
  // that a run of many short requests still gives a picture of reasonable size.
  std::string predicted, tail;
  const size_t stride = std::max<size_t>(1, rows.size() / 4000);
  double last_line_x = -1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const TraceRow& r = rows[i];
    const double x = l.x_of(r.frame->start_ms);
    if (r.violation || i % stride == 0)
      o << format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.3\" fill=\"%s\"/>\n", x,
                  y_lat(r.frame->ms), r.violation ? "#e15759" : "#4e79a7");
    if (x - last_line_x < 0.5) continue;
    last_line_x = x;
    if (!std::isnan(r.predicted_ms)) predicted += format("%.1f,%.1f ", x, y_lat(r.predicted_ms));
    if (s.adaptation.selector.tail_latency && !std::isnan(r.predicted_tail_ms))
      tail += format("%.1f,%.1f ", x, y_lat(r.predicted_tail_ms));
  }
  if (!predicted.empty())
    o << "<polyline fill=\"none\" stroke=\"#59a14f\" stroke-width=\"1\" points=\"" << predicted
      << "\"/>\n";
  if (!tail.empty())
    o << "<polyline fill=\"none\" stroke=\"#59a14f\" stroke-width=\"0.8\" "
         "stroke-dasharray=\"4,2\" points=\""
      << tail << "\"/>\n";
  std::string budget;
  for (size_t i = 0; i < run.changes.size(); ++i) {
    const double ms = run.changes[i].budgets.latency_ms;
    if (!std::isfinite(ms)) continue;
    const double end = i + 1 < run.changes.size() ? run.changes[i + 1].t_ms : l.duration_ms;
    budget += format("%.1f,%.1f %.1f,%.1f ", l.x_of(run.changes[i].t_ms), y_lat(ms), l.x_of(end),
                     y_lat(ms));
  }
  if (!budget.empty())
    o << "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" points=\"" << budget
      << "\"/>\n";
  o << format(
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\"><tspan fill=\"#4e79a7\">&#9679; observed"
      "</tspan>  <tspan fill=\"#e15759\">&#9679; over budget</tspan>  <tspan fill=\"#59a14f\">"
      "&#8212; predicted (- - tail)</tspan>  &#8212; budget  <tspan fill=\"#f28e2b\">&#9632; "
      "CPU burners</tspan>  <tspan fill=\"#4e79a7\">&#9632; memory balloon</tspan></text>\n",
      l.left + l.plot_w - 580, l.lat_top + l.lat_h + 16);
}

// Branch over time, one row per branch (fewest MACs at the bottom); labels of the branches the
// run used are black, the others grey; an unlabelled row has a tick.
void write_branch_panel(std::ostringstream& o, const std::vector<TraceRow>& rows,
                        const std::vector<size_t>& requests, const Workload& w, const Layout& l) {
  const std::vector<int> rank = branch_ranks(w.costs);
  const size_t n = w.costs.size();
  std::vector<double> row_y(n);
  for (size_t b = 0; b < n; ++b) row_y[b] = l.br_top + l.br_h - (rank[b] + 0.5) * l.br_h / n;
  const double margin = std::min(kBranchLabelPitch, l.br_h / n) / 2;
  const std::vector<BranchLabel> labels =
      place_branch_labels(row_y, rank, requests, l.br_top + margin, l.br_top + l.br_h - margin);
  std::vector<bool> labelled(n, false);
  for (const BranchLabel& label : labels) {
    const size_t b = static_cast<size_t>(label.branch);
    labelled[b] = true;
    o << format(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
        "stroke-width=\"0.6\"/>\n",
        l.left - 7, label.label_y, l.left, label.row_y);
    o << format(
             "<text class=\"branch-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
             "font-size=\"%.0f\" fill=\"%s\">",
             l.left - 8, label.label_y + 3.5, kBranchFontPx, requests[b] > 0 ? "#000" : "#888")
      << xml_escape(w.costs[b].name) << "</text>\n";
  }
  for (size_t b = 0; b < n; ++b)
    if (!labelled[b])
      o << format(
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
          "stroke-width=\"0.6\"/>\n",
          l.left - 3, row_y[b], l.left, row_y[b]);
  std::string steps;
  int last = -1;
  for (const TraceRow& r : rows) {
    const double x = l.x_of(r.frame->start_ms);
    const int branch = r.frame->branch;
    if (branch != last && last >= 0)
      steps += format("%.1f,%.1f ", x, row_y[static_cast<size_t>(last)]);
    if (branch != last) steps += format("%.1f,%.1f ", x, row_y[static_cast<size_t>(branch)]);
    last = branch;
  }
  if (last >= 0)
    steps += format("%.1f,%.1f", l.x_of(l.duration_ms), row_y[static_cast<size_t>(last)]);
  o << "<polyline fill=\"none\" stroke=\"#76b7b2\" stroke-width=\"2\" points=\"" << steps
    << "\"/>\n";
}

// Rolling accuracy over the requests of the last second.
void write_accuracy_panel(std::ostringstream& o, const std::vector<TraceRow>& rows,
                          const Scenario& s, const Layout& l) {
  std::vector<std::pair<double, double>> acc;  // t, percent
  size_t begin = 0, images = 0, right_count = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    images += static_cast<size_t>(s.frame_images);
    right_count += static_cast<size_t>(rows[i].frame->correct);
    while (rows[i].frame->start_ms - rows[begin].frame->start_ms > 1000) {
      images -= static_cast<size_t>(s.frame_images);
      right_count -= static_cast<size_t>(rows[begin].frame->correct);
      ++begin;
    }
    if (rows[i].frame->start_ms >= 1000 && images > 0)
      acc.emplace_back(rows[i].frame->start_ms, 100.0 * right_count / images);
  }
  double acc_lo = 100;
  for (const auto& a : acc) acc_lo = std::min(acc_lo, a.second);
  acc_lo = std::max(0.0, std::floor(acc_lo / 5) * 5 - 5);
  auto y_acc = [&](double pct) {
    return l.acc_top + l.acc_h * (1 - std::clamp((pct - acc_lo) / (100 - acc_lo), 0.0, 1.0));
  };
  const double acc_step = nice_step(100 - acc_lo, 4);
  for (double v = acc_lo; v <= 100 + 1e-9; v += acc_step)
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g%%</text>\n", l.left - 4,
                y_acc(v) + 4, v);
  std::string acc_points;
  // One point per pixel column keeps the file small.
  double last_x = -1;
  for (const auto& a : acc) {
    const double x = l.x_of(a.first);
    if (x - last_x < 1) continue;
    last_x = x;
    acc_points += format("%.1f,%.1f ", x, y_acc(a.second));
  }
  o << "<polyline fill=\"none\" stroke=\"#b07aa1\" stroke-width=\"1.2\" points=\"" << acc_points
    << "\"/>\n";
}

void write_time_axis(std::ostringstream& o, const Scenario& s, const Layout& l) {
  const double bottom = l.acc_top + l.acc_h;
  const double t_step = nice_step(s.duration_s, 8);
  for (double t = 0; t <= s.duration_s + 1e-9; t += t_step) {
    const double x = l.x_of(t * 1000);
    o << format(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n"
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
        x, bottom, x, bottom + 5, x, bottom + 18, t);
  }
  o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">time (s)</text>\n",
              l.left + l.plot_w / 2, bottom + 36);
}

}  // namespace

std::string trace_svg(const PolicyRun& run, const std::vector<TraceRow>& rows,
                      const PolicySummary& sum, const Scenario& s, const Workload& w) {
  std::vector<size_t> requests(w.costs.size(), 0);  // per branch
  for (const TraceRow& r : rows) ++requests[static_cast<size_t>(r.frame->branch)];
  const size_t used = static_cast<size_t>(
      std::count_if(requests.begin(), requests.end(), [](size_t c) { return c > 0; }));
  size_t longest = 0;
  for (const auto& c : w.costs) longest = std::max(longest, c.name.size());
  const Layout l = make_layout(s, w.costs.size(), used, longest);
  std::ostringstream o;
  write_title(o, run, sum, s, l);
  write_phases_and_panels(o, run, l);
  write_latency_panel(o, run, rows, sum, s, l);
  write_branch_panel(o, rows, requests, w, l);
  write_accuracy_panel(o, rows, s, l);
  write_time_axis(o, s, l);
  o << "</svg>\n";
  return o.str();
}

}  // namespace adascale::scenario
