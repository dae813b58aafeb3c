#include "pipeline.hpp"

namespace anubis {

std::string check_queue_capacity(const PipelineConfig& config) {
  const QueueCapabilities& caps = config.queue->capabilities;
  if (config.queue_capacity < 1) return "--queue-capacity must be at least 1";
  if (config.queue_capacity > caps.max_capacity) {
    return "--queue " + std::string(config.queue->name) + " holds at most " +
           std::to_string(caps.max_capacity) + " events; --queue-capacity " +
           std::to_string(config.queue_capacity) + " is too large";
  }
  return {};
}

}  // namespace anubis
