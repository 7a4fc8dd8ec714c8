"""Real servers on 127.0.0.1 standing in for the providers: SMTP sink, fake SendGrid."""
