# `esp` of the ESP32 port (ports/esp32/modesp.c), as far as the firmware uses it.
import _port


def osdebug(uart, level=None):
    # modesp.c esp_osdebug: None -> esp_log_level_set("*", ESP_LOG_ERROR);
    # otherwise esp_log_level_set("*", level) (0 = ESP_LOG_NONE: silent).
    if uart is None:
        _port.log_level[0] = _port.LOG_ERROR
    else:
        _port.log_level[0] = _port.LOG_INFO if level is None else level


def flash_size():
    return 4 * 1024 * 1024


def gpio_matrix_in(*a):
    pass
