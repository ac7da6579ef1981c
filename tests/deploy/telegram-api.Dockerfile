# The deploy test's Telegram Bot API stand-in: the project's production image (built first,
# from compose.yaml) plus the stand-in's package, which that image never holds.
FROM botstack-app:0.1.0
USER 0
COPY services/telegram_api /app/services/telegram_api
RUN python -m compileall -q /app/services/telegram_api
USER 65534:65534
