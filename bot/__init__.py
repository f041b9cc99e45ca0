"""The aiogram bot: routers, keyboards, middlewares, the draft workflow, the scheduler."""
